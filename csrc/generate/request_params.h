// What a request asks for, in three plain structs that cross into C++ from
// Python (bound as hearthlm._core.SamplingParams, GenerationParams,
// BeamSearchParams) and from the hearth executable's flags: how to choose a
// token, when to stop and what to report, and beam search. Checked once,
// here, with an error that names the parameter and its range.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "generate/sampler.h"

namespace hearth {

struct GenerationParams {
    int32_t n = 1;                        // completions of the prompt (sampling: forks of its KV blocks)
    int64_t max_tokens = 16;              // new tokens at most; < 0: until the context is full
    int64_t min_tokens = 0;               // vLLM's: no end token or stop_token_ids entry is drawn before this many
    std::vector<std::string> stop;        // stop strings
    bool include_stop_str_in_output = false;  // vLLM's: the stop string ends the text instead of being cut
    std::vector<int32_t> stop_token_ids;  // tokens that end the generation too
    // vLLM's bad_words as token sequences: a sequence's last token cannot be
    // drawn where the output so far ends with the rest of it
    std::vector<std::vector<int32_t>> bad_words_ids;
    bool ignore_eos = false;              // do not stop at the end-of-generation tokens
    int32_t logprobs = -1;                // alternatives per token to report; -1: no log-probabilities
    int32_t prompt_logprobs = -1;         // the same for each prompt token after the first (vLLM's); -1: none
    bool skip_special_tokens = true;      // control tokens are not shown in the text
    // Structured output: each token is drawn only from the tokens a mask
    // allows (Engine::allow_tokens, set by a grammar matcher before every
    // token of every completion).
    bool constrained = false;
};

enum class EarlyStopping {
    Heuristic,  // early_stopping=False: stop when the best running beam, at its current length, cannot win
    Done,       // early_stopping=True: stop as soon as num_beams hypotheses are finished
    Never,      // early_stopping="never": the canonical bound (at max length when length_penalty > 0)
};

struct BeamSearchParams {
    int32_t num_beams = 1;  // > 1: beam search instead of sampling
    float length_penalty = 1.0f;
    EarlyStopping early_stopping = EarlyStopping::Heuristic;
};

struct RequestParams {
    SamplingParams sampling;
    GenerationParams generation;
    BeamSearchParams beam;
    bool has_seed = false;  // false: the engine draws a seed (sampling.seed is ignored)

    bool beam_search() const { return beam.num_beams > 1; }
    // Sequences the request runs at once: its beams, or its n samples.
    int32_t n_sequences() const { return beam_search() ? beam.num_beams : generation.n; }
};

// Throw hearth::Error naming the parameter and its allowed range.
void check_generation_params(const GenerationParams& p);
void check_beam_search_params(const BeamSearchParams& p);
void check_request_params(const RequestParams& p);  // each part, and how they combine

EarlyStopping parse_early_stopping(const std::string& s);  // "false" | "true" | "never"

}  // namespace hearth
