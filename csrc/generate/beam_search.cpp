#include "generate/beam_search.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "generate/sampler.h"

namespace hearth {

namespace {

constexpr float kDead = -1.0e9f;  // Hugging Face's "very large negative" score

struct Candidate {
    float score;    // accumulated log-probability
    double logprob;  // accumulated unpenalized log-probability
    float token_logprob;  // the token's own
    int beam;       // which running beam it continues
    int32_t token;
    int64_t flat;   // beam * n_vocab + token: the order of ties
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

}  // namespace

BeamSearch::BeamSearch(const BeamSearchParams& p, float repetition_penalty, const std::vector<int32_t>& prompt,
                       int64_t max_length, std::vector<int32_t> eos)
    : p_(p), repetition_penalty_(repetition_penalty), prompt_(prompt), max_length_(max_length), eos_(std::move(eos)),
      k_(p.num_beams), cur_len_((int64_t)prompt.size()) {
    check_beam_search_params(p);
    HEARTH_CHECK(max_length_ > cur_len_, "beam search: no room for a new token");
    n_keep_ = std::max(2, 1 + (int)eos_.size()) * k_;
    // k identical beams; only the first counts at the start (the others -1e9)
    running_.resize(k_);
    for (int b = 1; b < k_; b++) running_[b].score = kDead;
    finished_.resize(k_);
    for (Finished& f : finished_) f.h.score = kDead;
}

bool BeamSearch::step(const std::vector<const float*>& logits, int64_t V, std::vector<Choice>& next) {
    HEARTH_CHECK((int)logits.size() == k_, "beam search: one row of logits per running beam");
    // the n_keep best continuations over all beams
    std::vector<Candidate> cand, best;
    std::vector<float> lp(V), raw(V);
    for (int b = 0; b < k_; b++) {
        const Beam& r = running_[b];
        log_softmax(logits[b], V, raw.data());
        lp = raw;
        if (repetition_penalty_ != 1.0f) {
            std::vector<int32_t> seen(prompt_);
            seen.insert(seen.end(), r.tokens.begin(), r.tokens.end());
            apply_repetition_penalty(lp.data(), V, seen.data(), seen.size(), repetition_penalty_);
        }
        best.clear();
        for (int64_t t = 0; t < V; t++) {
            best.push_back(Candidate{lp[t] + r.score, r.logprob + raw[t], raw[t], b, (int32_t)t, b * V + t});
        }
        const int64_t keep = std::min<int64_t>(n_keep_, V);
        std::partial_sort(best.begin(), best.begin() + keep, best.end(), better);
        cand.insert(cand.end(), best.begin(), best.begin() + keep);
    }
    std::sort(cand.begin(), cand.end(), better);
    cand.resize(std::min<size_t>(cand.size(), (size_t)n_keep_));

    std::vector<bool> hits(cand.size());
    for (size_t c = 0; c < cand.size(); c++) {
        hits[c] = cur_len_ + 1 >= max_length_ || std::find(eos_.begin(), eos_.end(), cand[c].token) != eos_.end();
    }

    // the next running beams: the k best that did not end
    std::vector<int> order(cand.size());
    for (size_t c = 0; c < cand.size(); c++) order[c] = (int)c;
    auto running_score = [&](int c) { return cand[c].score + (hits[c] ? kDead : 0.0f); };
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return running_score(a) > running_score(b); });
    order.resize(k_);

    // the finished hypotheses: the k best of the old ones and those of the
    // top k candidates that just ended
    const bool all_done = std::all_of(finished_.begin(), finished_.end(), [](const Finished& f) { return f.done; });
    const float norm = std::pow((float)(cur_len_ + 1 - (int64_t)prompt_.size()), p_.length_penalty);
    std::vector<Finished> merged = finished_;
    for (size_t c = 0; c < cand.size(); c++) {
        const bool just_finished = hits[c] && (int)c < k_;
        float s = cand[c].score / norm;
        if (all_done && p_.early_stopping == EarlyStopping::Done) s += kDead;
        if (!improvable_) s += kDead;
        if (!just_finished) s += kDead;
        Finished f;
        f.h.tokens = running_[cand[c].beam].tokens;
        f.h.tokens.push_back(cand[c].token);
        f.h.token_logprobs = running_[cand[c].beam].token_logprobs;
        f.h.token_logprobs.push_back(cand[c].token_logprob);
        f.h.score = s;
        f.h.cumulative_logprob = cand[c].logprob;
        f.done = just_finished;
        merged.push_back(std::move(f));
    }
    std::stable_sort(merged.begin(), merged.end(), [](const Finished& a, const Finished& b) { return a.h.score > b.h.score; });
    merged.resize(k_);
    finished_ = std::move(merged);

    // the new running beams
    std::vector<Beam> beams(k_);
    next.assign(k_, Choice{});
    for (int i = 0; i < k_; i++) {
        const Candidate& c = cand[order[i]];
        beams[i].tokens = running_[c.beam].tokens;
        beams[i].tokens.push_back(c.token);
        beams[i].token_logprobs = running_[c.beam].token_logprobs;
        beams[i].token_logprobs.push_back(c.token_logprob);
        beams[i].score = running_score(order[i]);
        beams[i].logprob = c.logprob;
        next[i] = Choice{c.beam, c.token};
    }
    running_ = std::move(beams);
    cur_len_++;

    // should it go on? (cur_len_ is now the length after this step's token)
    const int64_t prompt_len = (int64_t)prompt_.size();
    const float best_len = p_.early_stopping == EarlyStopping::Never && p_.length_penalty > 0.0f
                               ? (float)(max_length_ - prompt_len)
                               : (float)(cur_len_ - prompt_len);
    const float best_possible = running_[0].score / std::pow(best_len, p_.length_penalty);
    float worst_finished = finished_[0].h.score;
    for (const Finished& f : finished_) worst_finished = std::min(worst_finished, f.h.score);
    bool any_better = false;
    for (const Finished& f : finished_) any_better = any_better || best_possible > (f.done ? worst_finished : kDead);
    improvable_ = improvable_ && any_better;
    const bool all_finished = std::all_of(finished_.begin(), finished_.end(), [](const Finished& f) { return f.done; });
    const bool open_beam = !(all_finished && p_.early_stopping == EarlyStopping::Done);
    const bool can_continue = !std::all_of(hits.begin(), hits.end(), [](bool h) { return h; });
    return improvable_ && open_beam && can_continue;
}

std::vector<Hypothesis> BeamSearch::hypotheses() const {
    std::vector<Hypothesis> out;
    for (const Finished& f : finished_) out.push_back(f.h);
    return out;
}

BeamText beam_text(const Tokenizer* tok, const Hypothesis& h, const GenerationParams& p, const std::vector<int32_t>& eos) {
    BeamText out;
    out.n_tokens = h.tokens.size();
    out.cumulative_logprob = h.cumulative_logprob;
    std::vector<int32_t> shown = h.tokens;
    if (!shown.empty() && std::find(eos.begin(), eos.end(), shown.back()) != eos.end()) {
        out.finish_reason = FinishReason::Stop;
        out.stop_token = named_stop_token(tok, p, shown.back());
        if (!p.include_stop_str_in_output) shown.pop_back();  // its text kept only when asked, as in sampling
    }
    if (!tok) return out;
    const std::string bytes = tok->decode(shown.data(), shown.size(), !p.skip_special_tokens);
    utf8_decode_replace(bytes, true, out.text);
    // the earliest stop string (the longer one on a tie), as in sampling
    size_t at = std::string::npos;
    for (const std::string& s : p.stop) {
        if (s.empty()) continue;
        const size_t i = out.text.find(s);
        if (i != std::string::npos && (i < at || (i == at && s.size() > out.stop_string.size()))) {
            at = i;
            out.stop_string = s;
        }
    }
    if (at == std::string::npos) return out;
    // the tokens end with the one whose text completes the stop string
    StreamDecoder decoder(*tok, !p.skip_special_tokens);
    std::string so_far;
    size_t n = 0;
    while (n < shown.size() && so_far.size() < at + out.stop_string.size()) so_far += decoder.push(shown[n++]);
    out.n_tokens = n;
    out.cumulative_logprob = 0;
    for (size_t i = 0; i < n; i++) out.cumulative_logprob += h.token_logprobs[i];
    out.text.resize(at);
    if (p.include_stop_str_in_output) out.text += out.stop_string;
    out.finish_reason = FinishReason::Stop;
    out.stop_token = -1;
    return out;
}

}  // namespace hearth
