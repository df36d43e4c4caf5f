// Choosing the next token: vLLM's per-request restrictions, then a chain of
// logits processors in Hugging Face's order, then a draw from a seeded
// generator:
//   allowed_token_ids -> logit_bias -> repetition penalty
//   -> presence / frequency penalties -> temperature -> top-k -> top-p
//   -> min-p -> draw
// Temperature 0 is greedy: the penalties, then the first largest logit.
#pragma once

#include <cstdint>
#include <map>
#include <random>
#include <utility>
#include <vector>

namespace hearth {

struct SamplingParams {
    float temperature = 1.0f;         // >= 0; 0: greedy
    int32_t top_k = 0;                // >= 0; 0: off
    float top_p = 1.0f;               // (0, 1]; 1: off
    float min_p = 0.0f;               // [0, 1]; 0: off
    float repetition_penalty = 1.0f;  // > 0; 1: off (Hugging Face's, over prompt and output)
    float presence_penalty = 0.0f;    // OpenAI's, over the output tokens
    float frequency_penalty = 0.0f;
    uint64_t seed = 0;
    // vLLM's (and OpenAI's logit_bias), before the chain
    std::vector<int32_t> allowed_token_ids;  // not empty: no other token can be drawn
    std::map<int32_t, float> logit_bias;     // added to a token's logit
};

// Throws hearth::Error naming the parameter and its allowed range.
void check_sampling_params(const SamplingParams& p);

// The processors, one by one, each as its Hugging Face counterpart (a
// removed token gets -inf). Ids out of the row are ignored.
// vLLM's allowed_token_ids: every other token removed (nothing when empty).
void apply_allowed_tokens(float* logits, int64_t n_vocab, const std::vector<int32_t>& allowed);
// vLLM's logit_bias: the bias added to each listed token's logit.
void apply_logit_bias(float* logits, int64_t n_vocab, const std::map<int32_t, float>& bias);
// RepetitionPenaltyLogitsProcessor: for each distinct token of `tokens`, a
// negative logit is multiplied by the penalty, a positive one divided.
void apply_repetition_penalty(float* logits, int64_t n_vocab, const int32_t* tokens, size_t n_tokens, float penalty);
// OpenAI: logit -= frequency * count + presence * (count > 0), over `output`.
void apply_presence_frequency(float* logits, int64_t n_vocab, const int32_t* output, size_t n_output, float presence,
                              float frequency);
void apply_temperature(float* logits, int64_t n_vocab, float temperature);  // logits / temperature
// TopKLogitsWarper: below the k-th largest logit (ties with it are kept).
void apply_top_k(float* logits, int64_t n_vocab, int32_t k);
// TopPLogitsWarper: the smallest set of most likely tokens whose probability
// reaches p is kept (a token is removed when the tokens above it hold >= p).
void apply_top_p(float* logits, int64_t n_vocab, float p);
// MinPLogitsWarper: below min_p times the probability of the most likely.
void apply_min_p(float* logits, int64_t n_vocab, float min_p);

// The first largest logit (torch.argmax's choice on ties).
int32_t argmax(const float* logits, int64_t n_vocab);
// log softmax of one logit of the row, and the k most likely (id, log p) in
// order (ties by id): what logprobs report, from the model's own logits.
float log_prob(const float* logits, int64_t n_vocab, int32_t token);
std::vector<std::pair<int32_t, float>> top_log_probs(const float* logits, int64_t n_vocab, int32_t k);
// 1 + how many tokens are more likely than this one (vLLM's rank).
int32_t token_rank(const float* logits, int64_t n_vocab, int32_t token);

class Sampler {
public:
    explicit Sampler(const SamplingParams& p);
    const SamplingParams& params() const { return p_; }
    // The next token for a row of logits (which it uses as scratch: the row
    // is left changed), given the tokens before it: the prompt's and the
    // output's.
    int32_t sample(float* logits, int64_t n_vocab, const std::vector<int32_t>& prompt,
                   const std::vector<int32_t>& output);
    // A uniform double in [0, 1), 53 random bits (the draw; for tests).
    double uniform();

private:
    int32_t draw(const float* logits, int64_t n_vocab);

    SamplingParams p_;
    std::mt19937_64 rng_;  // fully specified by the standard: the same draws everywhere
    // the draw's scratch, kept between draws: each token's weight, each block's sum
    std::vector<float> weights_;
    std::vector<double> block_sums_;
    // after top-k: the tokens left, in id order, and their logits
    std::vector<int32_t> left_ids_;
    std::vector<float> left_;
};

}  // namespace hearth
