// One completion while it is generated (a request's sequence when it
// samples): its own seeded sampler, its stop rules and its text. The engine
// hands it each row of logits the model computes for it; it chooses the
// token, checks whether the completion ends there and returns the text that
// became whole. It never calls the model, so what it chooses depends on the
// logits alone, not on what else ran in the same batch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "generate/request_params.h"
#include "generate/sampler.h"
#include "generate/stop_strings.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

namespace hearth {

enum class FinishReason { None, Stop, Length };
const char* finish_reason_name(FinishReason r);  // "", "stop", "length"

// What stop_reason names when token id ended a completion, as vLLM: -1 for
// the model's own end token (unless ignore_eos), the id for a stop_token_ids
// entry or another end-of-generation token. Sampling and beam search alike.
int32_t named_stop_token(const Tokenizer* tok, const GenerationParams& p, int32_t id);

struct TokenLogprob {
    int32_t id = -1;
    float logprob = 0;  // log p under the model's own logits (before sampling's processing)
    int32_t rank = 0;   // 1 for the most likely token of the row
};

// token's log-probability and rank under this row of logits, then the k most
// likely tokens (rank 1 first): what logprobs report for one position.
std::vector<TokenLogprob> token_logprobs(const float* logits, int64_t n_vocab, int32_t token, int32_t k);

struct GeneratedToken {
    int32_t id = -1;
    std::string text;                // text that became showable with this token (whole UTF-8 characters)
    float logprob = 0;               // of the chosen token (with logprobs >= 0)
    std::vector<TokenLogprob> top;   // with logprobs >= 0: the chosen token, then the `logprobs` most likely
};

class Completion {
public:
    // n_ctx: the longest the sequence (prompt and output) may grow. Without
    // a tokenizer (a weights-only file) it chooses ids only: no text, no
    // end-of-generation tokens, no stop strings.
    Completion(const Tokenizer* tok, const GenerationParams& p, const SamplingParams& sampling,
               const std::vector<int32_t>& prompt, int64_t n_ctx);

    // The next token from this row of logits [n_vocab], which follows the
    // prompt and output so far. Call only while !finished().
    // allowed (structured output): a bit per token id; the others cannot be drawn.
    GeneratedToken next(const float* logits, int64_t n_vocab, const uint32_t* allowed = nullptr);

    bool finished() const { return reason_ != FinishReason::None; }
    FinishReason finish_reason() const { return reason_; }
    // what stopped it: the stop string, or the token id ("" / -1 otherwise;
    // -1 for the model's own end token, which vLLM's stop_reason does not name)
    const std::string& stop_string() const { return stop_string_; }
    int32_t stop_token() const { return stop_token_; }
    const std::vector<int32_t>& output() const { return output_; }
    // sum of the chosen tokens' log-probabilities (with logprobs >= 0)
    double cumulative_logprob() const { return cumulative_logprob_; }

private:
    void finish(FinishReason r, GeneratedToken& out);
    void hold_back_stop_tokens(int64_t n_vocab);
    void hold_back_bad_words(int64_t n_vocab);

    const Tokenizer* tok_;
    GenerationParams p_;
    Sampler sampler_;
    const std::vector<int32_t>& prompt_;
    int64_t n_ctx_;
    std::unique_ptr<StreamDecoder> text_;  // null without a tokenizer
    StopStrings stops_;
    std::vector<float> work_;
    std::vector<int32_t> output_;
    double cumulative_logprob_ = 0;
    FinishReason reason_ = FinishReason::None;
    std::string stop_string_;
    int32_t stop_token_ = -1;
};

}  // namespace hearth
