// One generation on one sequence of the model, token by token: the prompt is
// fed once (the part the cache already holds, a previous turn of the same
// conversation, is reused), then each step samples a token, checks the stop
// rules and returns the text that became whole. The hearth executable and
// the Python API both drive it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "text/detokenizer.h"
#include "model/model.h"
#include "generate/sampler.h"
#include "generate/stop_strings.h"

namespace hearth {

struct GenerationParams {
    int64_t max_tokens = 16;             // new tokens at most; < 0: until the context is full
    std::vector<std::string> stop;       // stop strings (never part of the text)
    std::vector<int32_t> stop_token_ids; // tokens that end the generation too
    bool ignore_eos = false;             // do not stop at the end-of-generation tokens
    int32_t logprobs = -1;               // alternatives per token to report; -1: no log-probabilities
    bool special = false;                // show control tokens in the text
};
void check_generation_params(const GenerationParams& p);

enum class FinishReason { None, Stop, Length };
const char* finish_reason_name(FinishReason r);  // "", "stop", "length"

struct GeneratedToken {
    int32_t id = -1;
    std::string text;   // text that became showable with this token (whole UTF-8 characters)
    float logprob = 0;  // log p of the token under the model (before sampling's processing)
    std::vector<std::pair<int32_t, float>> top;  // the `logprobs` most likely alternatives
};

class Generation {
public:
    // The model must have a tokenizer. Throws hearth::Error when the prompt
    // is empty or does not fit in the context.
    Generation(Model& m, int seq, std::vector<int32_t> prompt, const GenerationParams& p, Sampler& sampler);

    // Generates one token into out; false once the generation has finished
    // (then out is untouched). The token that finishes it is returned first,
    // with the last of the text.
    bool step(GeneratedToken& out);

    bool finished() const { return reason_ != FinishReason::None; }
    FinishReason finish_reason() const { return reason_; }
    // what stopped it: the stop string, or the token id ("" / -1 otherwise)
    const std::string& stop_string() const { return stop_string_; }
    int32_t stop_token() const { return stop_token_; }
    const std::vector<int32_t>& output() const { return output_; }
    int64_t prompt_tokens() const { return (int64_t)prompt_.size(); }
    int64_t reused_tokens() const { return reused_; }  // prompt tokens the cache already held
    double prefill_seconds() const { return prefill_s_; }
    double decode_seconds() const { return decode_s_; }

private:
    void finish(FinishReason r, GeneratedToken& out);

    Model& m_;
    const Tokenizer& tok_;
    int seq_;
    std::vector<int32_t> prompt_;
    GenerationParams p_;
    Sampler& sampler_;
    StreamDecoder text_;
    StopStrings stops_;
    std::vector<float> logits_, work_;
    std::vector<int32_t> output_;
    bool started_ = false;
    FinishReason reason_ = FinishReason::None;
    std::string stop_string_;
    int32_t stop_token_ = -1;
    int64_t reused_ = 0;
    double prefill_s_ = 0, decode_s_ = 0;
};

}  // namespace hearth
