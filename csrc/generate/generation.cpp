#include "generate/generation.h"

#include <algorithm>
#include <chrono>

#include "base/error.h"

namespace hearth {

namespace {

const Tokenizer& tokenizer_of(const Model& m) {
    if (!m.tokenizer()) {
        throw Error(m.file().err("it carries no tokenizer (no 'tokenizer.ggml.model'), so it cannot generate text"));
    }
    return *m.tokenizer();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void check_generation_params(const GenerationParams& p) {
    if (p.logprobs < -1) throw Error("logprobs must be >= 0 (or None), got " + std::to_string(p.logprobs));
}

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::Stop: return "stop";
        case FinishReason::Length: return "length";
        default: return "";
    }
}

Generation::Generation(Model& m, int seq, std::vector<int32_t> prompt, const GenerationParams& p, Sampler& sampler)
    : m_(m), tok_(tokenizer_of(m)), seq_(seq), prompt_(std::move(prompt)), p_(p), sampler_(sampler),
      text_(tok_, p.special), stops_(p.stop) {
    check_generation_params(p);
    if (prompt_.empty()) throw Error("the prompt is empty: give at least one token");
    if ((int64_t)prompt_.size() >= m_.n_ctx()) {
        throw Error("the prompt is " + std::to_string(prompt_.size()) + " tokens, which leaves no room to generate in " +
                    "the context of " + std::to_string(m_.n_ctx()) + " (raise n_ctx or shorten the prompt)");
    }
    for (int32_t t : prompt_) {
        if (t < 0 || t >= m_.n_vocab()) throw Error("prompt token id " + std::to_string(t) + " is out of range");
    }
}

void Generation::finish(FinishReason r, GeneratedToken& out) {
    reason_ = r;
    out.text += stops_.feed(text_.finish());  // what the decoder held back
    out.text += stops_.flush();
}

bool Generation::step(GeneratedToken& out) {
    if (finished()) return false;
    const int64_t V = m_.n_vocab();
    if ((int64_t)logits_.size() != V) logits_.resize(V);
    const auto t0 = std::chrono::steady_clock::now();
    if (!started_) {
        // reuse what the cache holds of this prompt; the last prompt token is
        // always fed again, for its logits
        const std::vector<int32_t>& cached = m_.seq_tokens(seq_);
        const size_t common = std::mismatch(cached.begin(), cached.end(), prompt_.begin(), prompt_.end()).first - cached.begin();
        reused_ = (int64_t)std::min(common, prompt_.size() - 1);
        m_.truncate(seq_, reused_);
        m_.eval_on(seq_, prompt_.data() + reused_, (int64_t)prompt_.size() - reused_, logits_.data(), false);
        started_ = true;
        prefill_s_ += seconds_since(t0);
    } else {
        const int32_t last = output_.back();
        m_.eval_on(seq_, &last, 1, logits_.data(), false);
        decode_s_ += seconds_since(t0);
    }

    out = GeneratedToken{};
    work_ = logits_;
    out.id = sampler_.sample(work_.data(), V, prompt_, output_);
    if (p_.logprobs >= 0) {
        out.logprob = log_prob(logits_.data(), V, out.id);
        out.top = top_log_probs(logits_.data(), V, p_.logprobs);
    }
    output_.push_back(out.id);

    const bool stop_token = std::find(p_.stop_token_ids.begin(), p_.stop_token_ids.end(), out.id) != p_.stop_token_ids.end();
    if (stop_token || (!p_.ignore_eos && tok_.vocab().ends_generation(out.id))) {
        stop_token_ = out.id;  // its text is not part of the answer
        finish(FinishReason::Stop, out);
        return true;
    }
    out.text = stops_.feed(text_.push(out.id));
    if (stops_.found()) {
        stop_string_ = stops_.which();
        reason_ = FinishReason::Stop;
        return true;
    }
    const bool at_max = p_.max_tokens >= 0 && (int64_t)output_.size() >= p_.max_tokens;
    const bool context_full = m_.seq_length(seq_) + 1 > m_.n_ctx();  // no room to feed this token
    if (at_max || context_full) finish(FinishReason::Length, out);
    return true;
}

}  // namespace hearth
