#include "generate/beam_search.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "generate/sampler.h"

namespace hearth {

namespace {

constexpr float kDead = -1.0e9f;  // Hugging Face's "very large negative" score

struct Candidate {
    float score;   // accumulated log-probability
    int beam;      // which running beam it continues
    int32_t token;
    int64_t flat;  // beam * n_vocab + token: the order of ties
};

bool better(const Candidate& a, const Candidate& b) { return a.score > b.score || (a.score == b.score && a.flat < b.flat); }

// log_softmax in float, as torch computes it for the row
void log_softmax(const float* x, int64_t n, float* out) {
    const float max = *std::max_element(x, x + n);
    double z = 0.0;
    for (int64_t i = 0; i < n; i++) z += std::exp((double)x[i] - max);
    const float lz = (float)std::log(z);
    for (int64_t i = 0; i < n; i++) out[i] = (x[i] - max) - lz;
}

struct Running {
    int seq;                      // its sequence in the cache
    std::vector<int32_t> tokens;  // generated so far
    float score;
    std::vector<float> logits;    // of its next token
};

struct Finished {
    std::vector<int32_t> tokens;
    float score = kDead;
    bool done = false;
};

}  // namespace

BeamSearchResult beam_search(Model& m, int seq, const std::vector<int32_t>& prompt, const BeamSearchParams& p) {
    if (p.num_beams < 1) throw Error("num_beams must be >= 1, got " + std::to_string(p.num_beams));
    if (p.max_new_tokens < 1) throw Error("max_new_tokens must be >= 1, got " + std::to_string(p.max_new_tokens));
    if (!(p.repetition_penalty > 0.0f)) throw Error("repetition_penalty must be > 0");
    if (prompt.empty()) throw Error("the prompt is empty: give at least one token");
    const int64_t V = m.n_vocab();
    const int k = p.num_beams;
    const int64_t prompt_len = (int64_t)prompt.size();
    const int64_t max_length = prompt_len + p.max_new_tokens;
    if (max_length > m.n_ctx()) {
        throw Error("prompt (" + std::to_string(prompt_len) + ") + max_new_tokens (" + std::to_string(p.max_new_tokens) +
                    ") exceed the context of " + std::to_string(m.n_ctx()));
    }
    std::vector<int32_t> eos = p.eos;
    if (eos.empty() && m.tokenizer()) eos = m.tokenizer()->vocab().end_of_generation;
    const int n_keep = std::max(2, 1 + (int)eos.size()) * k;  // candidates kept per step

    BeamSearchResult result;
    // the prompt, reusing what the cache holds of it
    const std::vector<int32_t>& cached = m.seq_tokens(seq);
    const int64_t common = std::min<int64_t>(
        std::mismatch(cached.begin(), cached.end(), prompt.begin(), prompt.end()).first - cached.begin(), prompt_len - 1);
    m.truncate(seq, common);
    std::vector<float> first(V);
    m.eval_on(seq, prompt.data() + common, prompt_len - common, first.data(), false);

    // k identical beams; only the first counts at the start (the others -1e9)
    std::vector<Running> running(k);
    for (int b = 0; b < k; b++) running[b] = Running{m.fork_sequence(seq), {}, b == 0 ? 0.0f : kDead, first};
    std::vector<Finished> finished(k);
    bool improvable = true;
    std::vector<float> lp(V);
    std::vector<Candidate> cand, best;

    for (int64_t cur_len = prompt_len;; cur_len++) {
        result.steps++;
        // the n_keep best continuations over all beams
        cand.clear();
        for (int b = 0; b < k; b++) {
            Running& r = running[b];
            log_softmax(r.logits.data(), V, lp.data());
            if (p.repetition_penalty != 1.0f) {
                std::vector<int32_t> seen(prompt);
                seen.insert(seen.end(), r.tokens.begin(), r.tokens.end());
                apply_repetition_penalty(lp.data(), V, seen.data(), seen.size(), p.repetition_penalty);
            }
            best.clear();
            for (int64_t t = 0; t < V; t++) best.push_back(Candidate{lp[t] + r.score, b, (int32_t)t, b * V + t});
            std::partial_sort(best.begin(), best.begin() + std::min<int64_t>(n_keep, V), best.end(), better);
            cand.insert(cand.end(), best.begin(), best.begin() + std::min<int64_t>(n_keep, V));
        }
        std::sort(cand.begin(), cand.end(), better);
        cand.resize(std::min<size_t>(cand.size(), (size_t)n_keep));

        std::vector<bool> hits(cand.size());
        for (size_t c = 0; c < cand.size(); c++) {
            hits[c] = cur_len + 1 >= max_length || std::find(eos.begin(), eos.end(), cand[c].token) != eos.end();
        }

        // the next running beams: the k best that did not end
        std::vector<int> order(cand.size());
        for (size_t c = 0; c < cand.size(); c++) order[c] = (int)c;
        auto running_score = [&](int c) { return cand[c].score + (hits[c] ? kDead : 0.0f); };
        std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return running_score(a) > running_score(b); });
        order.resize(k);

        // the finished hypotheses: the k best of the old ones and those of the
        // top k candidates that just ended
        const bool all_done = std::all_of(finished.begin(), finished.end(), [](const Finished& f) { return f.done; });
        const float norm = std::pow((float)(cur_len + 1 - prompt_len), p.length_penalty);
        std::vector<Finished> merged = finished;
        for (size_t c = 0; c < cand.size(); c++) {
            const bool just_finished = hits[c] && (int)c < k;
            float s = cand[c].score / norm;
            if (all_done && p.early_stopping == EarlyStopping::Done) s += kDead;
            if (!improvable) s += kDead;
            if (!just_finished) s += kDead;
            Finished f;
            f.tokens = running[cand[c].beam].tokens;
            f.tokens.push_back(cand[c].token);
            f.score = s;
            f.done = just_finished;
            merged.push_back(std::move(f));
        }
        std::stable_sort(merged.begin(), merged.end(), [](const Finished& a, const Finished& b) { return a.score > b.score; });
        merged.resize(k);
        finished = std::move(merged);

        // the new running beams take over their sources' sequences (a source
        // chosen twice is forked: the copies share its blocks)
        std::vector<Running> next(k);
        std::vector<int> uses(k, 0);
        for (int i = 0; i < k; i++) {
            const Candidate& c = cand[order[i]];
            next[i].tokens = running[c.beam].tokens;
            next[i].tokens.push_back(c.token);
            next[i].score = running_score(order[i]);
            next[i].seq = uses[c.beam]++ == 0 ? running[c.beam].seq : m.fork_sequence(running[c.beam].seq);
        }
        for (int b = 0; b < k; b++)
            if (uses[b] == 0) m.free_sequence(running[b].seq);
        running = std::move(next);

        // should it go on? (cur_len is the length after this step's token)
        const int64_t len_after = cur_len + 1;
        const float best_len = p.early_stopping == EarlyStopping::Never && p.length_penalty > 0.0f
                                   ? (float)(max_length - prompt_len)
                                   : (float)(len_after - prompt_len);
        const float best_possible = running[0].score / std::pow(best_len, p.length_penalty);
        float worst_finished = finished[0].score;
        for (const Finished& f : finished) worst_finished = std::min(worst_finished, f.score);
        bool any_better = false;
        for (const Finished& f : finished) any_better = any_better || best_possible > (f.done ? worst_finished : kDead);
        improvable = improvable && any_better;
        const bool all_finished = std::all_of(finished.begin(), finished.end(), [](const Finished& f) { return f.done; });
        const bool open_beam = !(all_finished && p.early_stopping == EarlyStopping::Done);
        const bool can_continue = !std::all_of(hits.begin(), hits.end(), [](bool h) { return h; });
        if (!(improvable && open_beam && can_continue)) break;

        std::vector<int32_t> tokens(k);
        std::vector<int> seqs(k);
        for (int i = 0; i < k; i++) {
            tokens[i] = running[i].tokens.back();
            seqs[i] = running[i].seq;
        }
        std::vector<float> logits((size_t)k * V);
        m.eval_seqs(tokens.data(), seqs.data(), k, logits.data());
        result.peak_kv_blocks = std::max(result.peak_kv_blocks, m.kv_blocks_in_use());
        for (int i = 0; i < k; i++) running[i].logits.assign(logits.begin() + i * V, logits.begin() + (i + 1) * V);
    }
    for (const Running& r : running) m.free_sequence(r.seq);
    for (Finished& f : finished) result.hypotheses.push_back(Hypothesis{std::move(f.tokens), f.score});
    return result;
}

}  // namespace hearth
