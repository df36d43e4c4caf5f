#include "generate/completion.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"

namespace hearth {

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        default: return "";
    }
}

int32_t named_stop_token(const Tokenizer* tok, const GenerationParams& p, int32_t id) {
    return !p.ignore_eos && tok && id == tok->vocab().eos ? -1 : id;
}

Completion::Completion(const Tokenizer* tok, const GenerationParams& p, const SamplingParams& sampling,
                       const std::vector<int32_t>& prompt, int64_t n_ctx)
    : tok_(tok), p_(p), sampler_(sampling), prompt_(prompt), n_ctx_(n_ctx), stops_(p.stop) {
    check_generation_params(p);
    if (tok_) text_ = std::make_unique<StreamDecoder>(*tok_, !p.skip_special_tokens);
    else if (!p.stop.empty()) throw Error("stop strings need the model's tokenizer, and this file carries none");
}

void Completion::finish(FinishReason r, GeneratedToken& out) {
    reason_ = r;
    if (text_) out.text += stops_.feed(text_->finish());  // what the decoder held back
    if (stops_.found()) {
        stop_string_ = stops_.which();
        reason_ = FinishReason::Stop;
        if (p_.include_stop_str_in_output) out.text += stop_string_;
        return;
    }
    out.text += stops_.flush();
}

// min_tokens (vLLM's MinTokensLogitsProcessor): before it, the tokens that
// would end the completion (stop_token_ids, and the end tokens unless
// ignore_eos) cannot be drawn.
void Completion::hold_back_stop_tokens(int64_t n_vocab) {
    for (int32_t t : p_.stop_token_ids)
        if (t < n_vocab) work_[t] = -INFINITY;
    if (!p_.ignore_eos && tok_)
        for (int32_t t : tok_->vocab().end_of_generation)
            if (t >= 0 && t < n_vocab) work_[t] = -INFINITY;
}

// bad_words (vLLM's NoBadWordsLogitsProcessor): a word's last token is
// masked where the output ends with the tokens before it (at once for a
// word of one token). Where that would leave nothing to draw (with
// allowed_token_ids, say), the bad words yield: a completion never fails.
void Completion::hold_back_bad_words(int64_t n_vocab) {
    std::vector<std::pair<int32_t, float>> masked;
    for (const std::vector<int32_t>& word : p_.bad_words_ids) {
        const size_t before = word.size() - 1;
        if (word.back() >= n_vocab || before > output_.size()) continue;
        if (std::equal(word.begin(), word.end() - 1, output_.end() - (std::ptrdiff_t)before)) {
            masked.emplace_back(word.back(), work_[word.back()]);
            work_[word.back()] = -INFINITY;
        }
    }
    if (masked.empty()) return;
    // what the sampler may still draw (it applies allowed_token_ids itself)
    const std::vector<int32_t>& allowed = sampler_.params().allowed_token_ids;
    auto drawable = [&](int64_t t) { return t < n_vocab && work_[t] != -INFINITY; };
    const bool left = allowed.empty() ? std::any_of(work_.begin(), work_.end(), [](float x) { return x != -INFINITY; })
                                      : std::any_of(allowed.begin(), allowed.end(), drawable);
    if (left) return;
    for (auto it = masked.rbegin(); it != masked.rend(); ++it) work_[it->first] = it->second;  // last masked first
}

std::vector<TokenLogprob> token_logprobs(const float* logits, int64_t n_vocab, int32_t token, int32_t k) {
    std::vector<TokenLogprob> out;
    out.push_back(TokenLogprob{token, log_prob(logits, n_vocab, token), token_rank(logits, n_vocab, token)});
    int32_t rank = 1;
    for (const auto& [id, lp] : top_log_probs(logits, n_vocab, k)) out.push_back(TokenLogprob{id, lp, rank++});
    return out;
}

GeneratedToken Completion::next(const float* logits, int64_t n_vocab, const uint32_t* allowed) {
    HEARTH_CHECK(!finished(), "Completion::next after the completion finished");
    GeneratedToken out;
    work_.assign(logits, logits + n_vocab);
    if (allowed) {
        bool any = false;
        for (int64_t t = 0; t < n_vocab; t++) {
            const bool ok = (allowed[t >> 5] >> (t & 31)) & 1u;
            if (!ok) work_[t] = -INFINITY;
            any = any || ok;
        }
        HEARTH_CHECK(any, "structured output: the grammar allows no token here");
    }
    if ((int64_t)output_.size() < p_.min_tokens) hold_back_stop_tokens(n_vocab);
    hold_back_bad_words(n_vocab);
    out.id = sampler_.sample(work_.data(), n_vocab, prompt_, output_);
    if (p_.logprobs >= 0) {  // an O(n_vocab) pass: only when asked for
        out.top = token_logprobs(logits, n_vocab, out.id, p_.logprobs);
        out.logprob = out.top[0].logprob;
        cumulative_logprob_ += out.logprob;
    }
    output_.push_back(out.id);

    const bool stop_token = std::find(p_.stop_token_ids.begin(), p_.stop_token_ids.end(), out.id) != p_.stop_token_ids.end();
    if (stop_token || (!p_.ignore_eos && tok_ && tok_->vocab().ends_generation(out.id))) {
        stop_token_ = named_stop_token(tok_, p_, out.id);
        // its text is not part of the answer, unless include_stop_str_in_output:
        // then it ends it, as vLLM decodes it (a special token only where
        // special tokens are shown)
        if (p_.include_stop_str_in_output && text_) out.text = stops_.feed(text_->push(out.id));
        finish(FinishReason::Stop, out);
        return out;
    }
    if (text_) out.text = stops_.feed(text_->push(out.id));
    if (stops_.found()) {
        stop_string_ = stops_.which();
        reason_ = FinishReason::Stop;
        if (p_.include_stop_str_in_output) out.text += stop_string_;
        return out;
    }
    const bool at_max = p_.max_tokens >= 0 && (int64_t)output_.size() >= p_.max_tokens;
    // prompt and output fill the context (vLLM's max_model_len: the last
    // token is never fed, but the sequence is as long as the context allows)
    const bool context_full = (int64_t)(prompt_.size() + output_.size()) >= n_ctx_;
    if (at_max || context_full) finish(FinishReason::Length, out);
    return out;
}

}  // namespace hearth
