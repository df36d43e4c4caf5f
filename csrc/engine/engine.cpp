#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "base/error.h"
#include "base/memory_info.h"

namespace hearth {

namespace {

constexpr int64_t B = KVCache::kBlockTokens;

int64_t blocks_for(int64_t tokens) { return (tokens + B - 1) / B; }

constexpr int64_t kDefaultKVBytes = int64_t(1) << 30;  // the default pool's ceiling, 1 GiB

int64_t kv_bytes_per_token(const HParams& hp, KVType type) {
    return (int64_t)std::ceil(hp.n_layer * 2 * hp.n_head_kv * KVCache::position_bytes(type, hp.head_dim));
}

// Refuse, before mapping a byte, a KV cache the machine could never hold: its
// pages are committed only as tokens arrive, so it would map fine and then get
// the process killed halfway through a long prompt.
void check_kv_fits_in_memory(const HParams& hp, const EngineConfig& c, int64_t tokens) {
    const uint64_t token_bytes = (uint64_t)kv_bytes_per_token(hp, c.kv_type);
    const uint64_t memory = usable_memory_bytes();
    if ((uint64_t)tokens <= memory / token_bytes) return;
    // tokens x bytes may not fit in 64 bits: say it in double
    const double need = (double)tokens * (double)token_bytes;
    char huge[32];
    std::snprintf(huge, sizeof huge, "%.3g bytes", need);
    const std::string need_text = need < 1.8e19 ? describe_bytes((uint64_t)need) : std::string(huge);
    throw Error("the KV cache for " + std::to_string(tokens) + " tokens (n_ctx " + std::to_string(c.n_ctx) +
                ", " + std::to_string(token_bytes) + " bytes a token in " + kv_type_name(c.kv_type) + ") would need " +
                need_text + " but this machine has " + describe_bytes(memory) +
                " of memory: lower n_ctx (-c) or kv_cache_tokens");
}

EngineConfig resolve(const Model& m, EngineConfig c) {
    if (c.n_ctx < 0) throw Error("n_ctx must be positive, got " + std::to_string(c.n_ctx));
    if (c.n_ctx == 0) c.n_ctx = default_n_ctx(m.hparams());
    check_kv_fits_in_memory(m.hparams(), c, c.n_ctx);  // first, so that no size below can overflow
    if (c.max_num_seqs < 1) throw Error("max_num_seqs must be >= 1, got " + std::to_string(c.max_num_seqs));
    if (c.kv_cache_tokens < 0) throw Error("kv_cache_tokens must be positive, got " + std::to_string(c.kv_cache_tokens));
    if (c.kv_cache_tokens == 0) {
        // room for several full contexts, but not gigabytes of them for a
        // large model: at most kDefaultKVBytes, unless one context needs more
        const int64_t token_bytes = kv_bytes_per_token(m.hparams(), c.kv_type);
        const int64_t fits = std::max<int64_t>(kDefaultKVBytes / token_bytes, c.n_ctx);
        c.kv_cache_tokens = std::min<int64_t>(c.n_ctx * std::min<int64_t>(c.max_num_seqs, 4), fits);
    }
    if (c.kv_cache_tokens < c.n_ctx) {
        throw Error("kv_cache_tokens (" + std::to_string(c.kv_cache_tokens) + ") must hold at least one full context (n_ctx " +
                    std::to_string(c.n_ctx) + ")");
    }
    check_kv_fits_in_memory(m.hparams(), c, c.kv_cache_tokens);
    c.kv_cache_tokens = blocks_for(c.kv_cache_tokens) * B;
    return c;
}

uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

int64_t default_n_ctx(const HParams& hp) { return std::min<int64_t>(hp.n_ctx_train, 4096); }

Engine::Engine(Model& model, const Tokenizer* tok, const EngineConfig& c)
    : model_(model),
      tok_(tok),
      c_(resolve(model, c)),
      cache_(model.new_kv_cache(c_.kv_type, c_.kv_cache_tokens / B)),
      kv_(*cache_, c_.enable_prefix_caching),
      sched_(SchedulerConfig{c_.max_num_seqs, c_.max_num_batched_tokens}, kv_),
      t0_(std::chrono::steady_clock::now()) {
    if (tok_ && tok_->n_tokens() > model.n_vocab()) {
        throw Error(model.file().err("the token list has " + std::to_string(tok_->n_tokens()) +
                                     " tokens but token_embd has only " + std::to_string(model.n_vocab()) + " rows"));
    }
}

double Engine::now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
}

uint64_t Engine::seed_for(const Request& r, int index) const {
    // completion 0 takes the request's seed; the others their own streams
    return index == 0 ? r.params.sampling.seed : splitmix64(r.params.sampling.seed ^ splitmix64((uint64_t)index));
}

void Engine::add_request(const std::string& id, std::vector<int32_t> prompt, const RequestParams& p) {
    if (requests_.count(id)) throw Error("a request with id '" + id + "' is already running");
    check_request_params(p);
    if (prompt.empty()) throw Error("the prompt is empty: give at least one token");
    if ((int64_t)prompt.size() >= c_.n_ctx) {
        throw Error("the prompt is " + std::to_string(prompt.size()) + " tokens, which does not fit in the context of " +
                    std::to_string(c_.n_ctx) + " (raise n_ctx or shorten the prompt)");
    }
    for (int32_t t : prompt) {
        if (t < 0 || t >= model_.n_vocab()) {
            throw Error("prompt token id " + std::to_string(t) + " is out of range [0, " + std::to_string(model_.n_vocab()) + ")",
                        "prompt");
        }
    }
    check_token_ids(p);
    // every sequence at its longest, without sharing (a preempted request's
    // sequences are recomputed one by one): it must fit in the pool alone
    const int64_t n_seqs = p.n_sequences();
    const int64_t longest = p.generation.max_tokens < 0 ? c_.n_ctx
                                                        : std::min<int64_t>(c_.n_ctx, (int64_t)prompt.size() + p.generation.max_tokens);
    const int64_t worst = n_seqs * blocks_for(longest);
    const std::string param = n_seqs > 1 ? "n" : "";  // one sequence always fits a pool of n_ctx
    if (worst > kv_.pool().n_blocks()) {
        throw Error(std::to_string(n_seqs) + " sequences of up to " + std::to_string(longest) + " tokens need " +
                    std::to_string(worst) + " KV blocks, but the pool has " + std::to_string(kv_.pool().n_blocks()) +
                    " (raise kv_cache_tokens, or lower n / num_beams / max_tokens)",
                    param);
    }
    if (n_seqs > c_.max_num_batched_tokens) {
        throw Error(std::to_string(n_seqs) + " sequences do not fit in a step of max_num_batched_tokens " +
                    std::to_string(c_.max_num_batched_tokens),
                    param);
    }

    auto r = std::make_unique<Request>();
    r->id = id;
    r->prompt = std::move(prompt);
    r->params = p;
    if (!p.has_seed) r->params.sampling.seed = ((uint64_t)std::random_device{}() << 32) ^ std::random_device{}();
    r->eos = p.generation.stop_token_ids;
    if (!p.generation.ignore_eos && tok_) {
        for (int32_t e : tok_->vocab().end_of_generation) r->eos.push_back(e);
    }
    r->arrival_time = now();
    if (p.generation.constrained) r->allowed.resize(p.generation.n);
    auto s = std::make_unique<Sequence>();
    s->tokens = r->prompt;
    if (!p.beam_search()) {
        SamplingParams sp = r->params.sampling;
        sp.seed = seed_for(*r, 0);
        s->completion = std::make_unique<Completion>(tok_, p.generation, sp, r->prompt, c_.n_ctx);
    }
    r->seqs.push_back(std::move(s));
    sched_.add(r.get());
    requests_[id] = std::move(r);
}

void Engine::allow_tokens(const std::string& id, int index, std::vector<uint32_t> mask) {
    const auto it = requests_.find(id);
    if (it == requests_.end()) throw Error("allow_tokens: no running request '" + id + "'");
    Request& r = *it->second;
    HEARTH_CHECK(r.params.generation.constrained, "allow_tokens: request '" + id + "' is not constrained");
    HEARTH_CHECK(index >= 0 && index < (int)r.allowed.size(), "allow_tokens: completion index out of range");
    const size_t words = (size_t)((model_.n_vocab() + 31) / 32);
    if (mask.size() != words) {
        throw Error("allow_tokens: a mask of " + std::to_string(mask.size()) + " words, the vocabulary needs " +
                    std::to_string(words));
    }
    r.allowed[index] = std::move(mask);
}

bool Engine::abort_request(const std::string& id) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return false;
    sched_.remove(it->second.get());
    requests_.erase(it);
    return true;
}

EngineStats Engine::stats() const {
    EngineStats s;
    s.num_requests_running = sched_.n_running();
    s.num_requests_waiting = sched_.n_waiting();
    s.kv_blocks_used = kv_.pool().n_used();
    s.kv_blocks_total = kv_.pool().n_blocks();
    s.prefix_cache_queries = sched_.prefix_queries();
    s.prefix_cache_hits = sched_.prefix_hits();
    s.prompt_tokens = prompt_tokens_;
    s.generation_tokens = generation_tokens_;
    s.num_preemptions = sched_.n_preemptions();
    return s;
}

std::vector<RequestOutput> Engine::step() {
    std::vector<ScheduledChunk> chunks = sched_.schedule();
    if (chunks.empty() && sched_.n_running() == 0 && sched_.n_waiting() > 0) {
        // nothing runs and the first in line cannot be admitted: the pool is
        // held outside the scheduler (eval's sequence) and never frees up
        const Request* r = sched_.first_waiting();
        const std::string id = r->id;
        abort_request(id);
        throw Error("request '" + id + "' cannot start: the KV cache has " + std::to_string(kv_.pool().n_free()) +
                    " free blocks of " + std::to_string(kv_.pool().n_blocks()) + " (reset() frees eval's tokens)");
    }
    std::vector<Request*> touched;
    if (!chunks.empty()) {
        batch_.clear();
        for (const ScheduledChunk& c : chunks) {
            const Sequence& s = *c.seq;
            const int32_t idx = batch_.add_sequence(kv_.blocks(s.kv));
            for (int64_t j = 0; j < c.n_tokens; j++) {
                const int64_t pos = s.n_computed + j;
                batch_.add(s.tokens[pos], idx, pos, pos == (int64_t)s.tokens.size() - 1 || wants_prompt_logprobs(*c.req, pos));
            }
            if (c.req->first_scheduled_time < 0) c.req->first_scheduled_time = now();
            if (std::find(touched.begin(), touched.end(), c.req) == touched.end()) touched.push_back(c.req);
        }
        for (Request* r : touched) note_kv_blocks(*r);  // its blocks for this step are allocated
        const int64_t V = model_.n_vocab();
        logits_.resize((size_t)(batch_.n_logits() * V));
        model_.decode(batch_, *cache_, logits_.data());

        // each sequence that reached its last token gets its row (after the
        // rows of its prompt's log-probabilities, when it asked for them)
        std::vector<Draw> draws;
        int64_t row = 0;
        for (const ScheduledChunk& c : chunks) {
            Sequence& s = *c.seq;
            for (int64_t pos = s.n_computed; pos < s.n_computed + c.n_tokens; pos++) {
                if (!wants_prompt_logprobs(*c.req, pos)) continue;
                c.req->prompt_logprobs.push_back(token_logprobs(logits_.data() + (row++) * V, V, c.req->prompt[pos + 1],
                                                                c.req->params.generation.prompt_logprobs));
            }
            s.n_computed += c.n_tokens;
            kv_.cache_blocks(s.kv, s.tokens.data(), s.n_computed);
            if (s.n_computed == (int64_t)s.tokens.size()) accept(*c.req, s, logits_.data() + (row++) * V, draws);
        }
        // the sampled sequences draw on the model's threads: each has its own
        // sampler and state, so the order of the draws changes nothing
        std::vector<const uint32_t*> masks(draws.size(), nullptr);
        for (size_t i = 0; i < draws.size(); i++) {
            const Request& r = *draws[i].req;
            if (!r.params.generation.constrained) continue;
            const std::vector<uint32_t>& m = r.allowed[draws[i].seq->index];
            HEARTH_CHECK(!m.empty(), "structured output: request '" + r.id + "' has no token mask for its next token");
            masks[i] = m.data();
        }
        std::vector<GeneratedToken> drawn(draws.size());
        model_.thread_pool().parallel_for((int64_t)draws.size(), [&](int64_t i) {
            drawn[i] = draws[i].seq->completion->next(draws[i].logits, V, masks[i]);
        });
        for (size_t i = 0; i < draws.size(); i++) {
            if (masks[i]) draws[i].req->allowed[draws[i].seq->index].clear();  // used up
        }
        for (size_t i = 0; i < draws.size(); i++) record(*draws[i].req, *draws[i].seq, drawn[i], draws[i].logits);
        for (Request* r : touched) {
            if (r->beams && !r->finished()) {
                const bool ready = std::all_of(r->seqs.begin(), r->seqs.end(), [](const auto& s) { return s->has_logits; });
                if (ready) beam_step(*r);
            }
            if (!r->finished() && std::all_of(r->seqs.begin(), r->seqs.end(), [](const auto& s) { return s->finished; })) {
                finish(*r);
            }
        }
    }

    std::vector<RequestOutput> outs;
    for (Request* r : touched) {
        const bool news = r->finished() || std::any_of(r->seqs.begin(), r->seqs.end(), [](const auto& s) {
                              return !s->new_tokens.empty() || !s->new_text.empty();
                          });
        if (news) outs.push_back(take_output(*r));
    }
    for (Request* r : touched) {
        if (!r->finished()) continue;
        const std::string id = r->id;  // the key outlives the request it names
        requests_.erase(id);
    }
    return outs;
}

void Engine::check_token_ids(const RequestParams& p) const {
    const int64_t V = model_.n_vocab();
    auto in_vocab = [&](int32_t t, const char* param) {
        if (t >= V) {
            throw Error(std::string(param) + " holds token id " + std::to_string(t) + ", out of the vocabulary [0, " +
                            std::to_string(V) + ")",
                        param);
        }
    };
    for (int32_t t : p.sampling.allowed_token_ids) in_vocab(t, "allowed_token_ids");
    for (const auto& [t, bias] : p.sampling.logit_bias) in_vocab(t, "logit_bias");
    // before min_tokens the ending tokens are masked: some allowed token must not end
    const std::vector<int32_t>& allowed = p.sampling.allowed_token_ids;
    if (p.generation.min_tokens == 0 || allowed.empty()) return;
    const std::vector<int32_t>& stops = p.generation.stop_token_ids;
    auto ends = [&](int32_t t) {
        if (std::find(stops.begin(), stops.end(), t) != stops.end()) return true;
        return !p.generation.ignore_eos && tok_ && tok_->vocab().ends_generation(t);
    };
    if (std::all_of(allowed.begin(), allowed.end(), ends)) {
        throw Error("allowed_token_ids holds only tokens that end the completion, so min_tokens cannot be reached",
                    "allowed_token_ids");
    }
}

// Row pos of a prompt gives prompt token pos + 1's log-probability, the
// first time it is computed (not again after a preemption).
bool Engine::wants_prompt_logprobs(const Request& r, int64_t pos) const {
    return r.prompt_logprobs_pending() && pos + 1 < (int64_t)r.prompt.size() && pos >= (int64_t)r.prompt_logprobs.size();
}

void Engine::note_kv_blocks(Request& r) const {
    std::vector<int32_t> held;
    for (const auto& s : r.seqs) {
        if (s->kv >= 0) held.insert(held.end(), kv_.blocks(s->kv).begin(), kv_.blocks(s->kv).end());
    }
    std::sort(held.begin(), held.end());
    const int64_t n = std::unique(held.begin(), held.end()) - held.begin();
    r.peak_kv_blocks = std::max(r.peak_kv_blocks, n);
}

// A beam's row waits until every beam has one; a sampled sequence's row (the
// prompt's, for each of the n completions it forks into) becomes a draw.
void Engine::accept(Request& r, Sequence& s, const float* logits, std::vector<Draw>& draws) {
    if (r.params.beam_search()) {
        if (!r.forked) {
            start_beams(r, s, logits);
        } else {
            s.logits.assign(logits, logits + model_.n_vocab());
            s.has_logits = true;
        }
        return;
    }
    if (!r.forked) {
        // the prompt is computed: n > 1 forks it, each fork with its own sampler
        r.forked = true;
        prompt_tokens_ += (int64_t)r.prompt.size();
        for (int i = 1; i < r.params.generation.n; i++) {
            auto child = std::make_unique<Sequence>();
            child->kv = kv_.fork(s.kv);
            child->tokens = s.tokens;
            child->n_computed = s.n_computed;
            child->index = i;
            SamplingParams sp = r.params.sampling;
            sp.seed = seed_for(r, i);
            child->completion = std::make_unique<Completion>(tok_, r.params.generation, sp, r.prompt, c_.n_ctx);
            r.seqs.push_back(std::move(child));
        }
        for (auto& seq : r.seqs) draws.push_back(Draw{&r, seq.get(), logits});
        return;
    }
    draws.push_back(Draw{&r, &s, logits});
}

void Engine::record(Request& r, Sequence& s, GeneratedToken& t, const float* logits) {
    s.tokens.push_back(t.id);
    s.new_tokens.push_back(t.id);
    s.new_text += t.text;
    if (r.params.generation.logprobs >= 0) s.new_logprobs.push_back(std::move(t.top));
    if (keep_logits_) s.new_logits.insert(s.new_logits.end(), logits, logits + model_.n_vocab());
    generation_tokens_++;
    r.last_token_time = now();
    if (r.first_token_time < 0) r.first_token_time = r.last_token_time;
    if (s.completion->finished()) finish_sequence(s);
}

void Engine::finish_sequence(Sequence& s) {
    s.finished = true;
    if (s.kv >= 0) kv_.free(s.kv);  // its blocks go back at once (those it shares stay with the others)
    s.kv = -1;
}

void Engine::start_beams(Request& r, Sequence& s, const float* logits) {
    r.forked = true;
    prompt_tokens_ += (int64_t)r.prompt.size();
    const int k = r.params.beam.num_beams;
    // as sampling does, prompt and output together fill the context at most
    const int64_t max_length = r.params.generation.max_tokens < 0
                                   ? c_.n_ctx
                                   : std::min<int64_t>(c_.n_ctx, (int64_t)r.prompt.size() + r.params.generation.max_tokens);
    r.beams = std::make_unique<BeamSearch>(r.params.beam, r.params.sampling.repetition_penalty, r.prompt, max_length, r.eos);
    // k beams that all begin as the prompt (they share its blocks)
    for (int i = 1; i < k; i++) {
        auto beam = std::make_unique<Sequence>();
        beam->kv = kv_.fork(s.kv);
        beam->tokens = s.tokens;
        beam->n_computed = s.n_computed;
        r.seqs.push_back(std::move(beam));
    }
    for (auto& b : r.seqs) {
        b->logits.assign(logits, logits + model_.n_vocab());
        b->has_logits = true;
    }
}

void Engine::beam_step(Request& r) {
    std::vector<const float*> rows;
    for (auto& s : r.seqs) rows.push_back(s->logits.data());
    std::vector<BeamSearch::Choice> next;
    const bool more = r.beams->step(rows, model_.n_vocab(), next);
    generation_tokens_ += (int64_t)r.seqs.size();
    r.last_token_time = now();
    if (r.first_token_time < 0) r.first_token_time = r.last_token_time;
    if (!more) {
        r.hypotheses = r.beams->hypotheses();
        for (auto& s : r.seqs) finish_sequence(*s);
        return;
    }
    // the new beams take over their sources' sequences; a source chosen
    // more than once is forked (the copies share its blocks)
    std::vector<std::unique_ptr<Sequence>> old = std::move(r.seqs);
    std::vector<std::unique_ptr<Sequence>> beams(next.size());
    std::vector<int> uses(old.size(), 0);
    for (size_t i = 0; i < next.size(); i++) {
        if (uses[next[i].source]++ == 0) continue;  // the first use takes the original, below
        const Sequence& src = *old[next[i].source];
        beams[i] = std::make_unique<Sequence>();
        beams[i]->kv = kv_.fork(src.kv);
        beams[i]->tokens = src.tokens;
        beams[i]->n_computed = src.n_computed;
    }
    std::vector<bool> taken(old.size(), false);
    for (size_t i = 0; i < next.size(); i++) {
        if (beams[i]) continue;
        beams[i] = std::move(old[next[i].source]);
        taken[next[i].source] = true;
    }
    for (size_t b = 0; b < old.size(); b++) {
        if (!taken[b] && old[b] && old[b]->kv >= 0) kv_.free(old[b]->kv);
    }
    for (size_t i = 0; i < next.size(); i++) {
        beams[i]->tokens.push_back(next[i].token);
        beams[i]->has_logits = false;
        beams[i]->logits.clear();
    }
    r.seqs = std::move(beams);
}

void Engine::finish(Request& r) {
    r.status = RequestStatus::Finished;
    r.finished_time = now();
    sched_.remove(&r);
}

RequestOutput Engine::take_output(Request& r) {
    RequestOutput o;
    o.request_id = r.id;
    o.finished = r.finished();
    o.num_prompt_tokens = (int64_t)r.prompt.size();
    o.num_cached_tokens = std::max<int64_t>(r.num_cached_tokens, 0);
    o.num_preemptions = r.num_preemptions;
    o.peak_kv_blocks = r.peak_kv_blocks;
    o.arrival_time = r.arrival_time;
    o.first_scheduled_time = r.first_scheduled_time;
    o.first_token_time = r.first_token_time;
    o.last_token_time = r.last_token_time;
    o.finished_time = r.finished_time;
    if (r.params.generation.prompt_logprobs >= 0 && !r.prompt_logprobs_reported && !r.prompt_logprobs_pending()) {
        o.prompt_logprobs = r.prompt_logprobs;  // kept: its length says they are done
        o.has_prompt_logprobs = true;
        r.prompt_logprobs_reported = true;
    }
    if (r.beams) {
        if (!r.finished()) return o;
        const int n = r.params.generation.n;
        for (int i = 0; i < n && i < (int)r.hypotheses.size(); i++) {
            const Hypothesis& h = r.hypotheses[i];
            const BeamText bt = beam_text(tok_, h, r.params.generation, r.eos);
            CompletionDelta d;
            d.index = i;
            d.token_ids.assign(h.tokens.begin(), h.tokens.begin() + (int64_t)bt.n_tokens);
            d.text = bt.text;
            d.finished = true;
            d.finish_reason = bt.finish_reason;
            d.stop_string = bt.stop_string;
            d.stop_token = bt.stop_token;
            d.beam_search = true;
            d.cumulative_logprob = bt.cumulative_logprob;
            d.beam_score = h.score;
            o.outputs.push_back(std::move(d));
        }
        return o;
    }
    for (auto& s : r.seqs) {
        CompletionDelta d;
        d.index = s->index;
        d.token_ids = std::move(s->new_tokens);
        d.text = std::move(s->new_text);
        d.logprobs = std::move(s->new_logprobs);
        d.logits = std::move(s->new_logits);
        s->new_tokens.clear();
        s->new_text.clear();
        s->new_logprobs.clear();
        s->new_logits.clear();
        d.finished = s->finished;
        if (s->completion) {
            d.finish_reason = s->completion->finish_reason();
            d.stop_string = s->completion->stop_string();
            d.stop_token = s->completion->stop_token();
            d.cumulative_logprob = s->completion->cumulative_logprob();
        }
        o.outputs.push_back(std::move(d));
    }
    std::sort(o.outputs.begin(), o.outputs.end(), [](const CompletionDelta& a, const CompletionDelta& b) { return a.index < b.index; });
    return o;
}

void Engine::eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
    if (n <= 0) throw Error("eval needs at least one token");
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= model_.n_vocab()) {
            throw Error("token id " + std::to_string(tokens[i]) + " is out of range [0, " + std::to_string(model_.n_vocab()) + ")");
        }
    }
    const int64_t len = (int64_t)eval_tokens_.size();
    if (len + n > c_.n_ctx) {
        throw Error(std::to_string(n) + " tokens do not fit in the context: n_ctx is " + std::to_string(c_.n_ctx) +
                    " and the cache already holds " + std::to_string(len) + " (raise n_ctx or shorten the prompt)");
    }
    if (eval_seq_ < 0) eval_seq_ = kv_.new_sequence();
    if (!kv_.allocate(eval_seq_, len, len + n)) {
        throw Error("the KV cache is full: " + std::to_string(len + n) + " positions needed, " +
                    std::to_string(kv_.pool().n_free()) + " free blocks of " + std::to_string(B) + " (requests hold the rest)");
    }
    batch_.clear();
    const int32_t idx = batch_.add_sequence(kv_.blocks(eval_seq_));
    for (int64_t i = 0; i < n; i++) batch_.add(tokens[i], idx, len + i, all_logits || i == n - 1);
    model_.decode(batch_, *cache_, logits);
    eval_tokens_.insert(eval_tokens_.end(), tokens, tokens + n);
}

void Engine::reset() {
    if (eval_seq_ >= 0) kv_.free(eval_seq_);
    eval_seq_ = -1;
    eval_tokens_.clear();
}

}  // namespace hearth
