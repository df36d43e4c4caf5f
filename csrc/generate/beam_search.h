// Beam search as Hugging Face's generate(num_beams=k, do_sample=False)
// runs it (transformers 5): each step keeps the 2k best continuations of all
// beams by summed log-probability, finishes those that end (an end token or
// the length limit) into a list of the k best hypotheses scored
// sum / length ** length_penalty, and goes on with the k best that did not
// end, until no running beam can beat the finished ones.
//
// The beams are sequences of the one KV cache: they share the blocks of
// their common prefix (copy on write), and each step evaluates all beams in
// one forward pass.
#pragma once

#include <cstdint>
#include <vector>

#include "model/model.h"

namespace hearth {

enum class EarlyStopping {
    Heuristic,  // early_stopping=False: stop when the best running beam, at its current length, cannot win
    Done,       // early_stopping=True: stop as soon as k hypotheses are finished
    Never,      // early_stopping="never": the canonical bound (at max length when length_penalty > 0)
};

struct BeamSearchParams {
    int num_beams = 4;
    int64_t max_new_tokens = 16;
    float length_penalty = 1.0f;
    EarlyStopping early_stopping = EarlyStopping::Heuristic;
    float repetition_penalty = 1.0f;  // on the log-probabilities, as Hugging Face applies it in beam search
    std::vector<int32_t> eos;         // end tokens; empty: the vocabulary's end-of-generation tokens
};

struct Hypothesis {
    std::vector<int32_t> tokens;  // the new tokens, the end token included when one ended it
    float score;                  // sum of log-probabilities / length ** length_penalty
};

struct BeamSearchResult {
    std::vector<Hypothesis> hypotheses;  // best first, num_beams of them
    int64_t steps = 0;
    int64_t peak_kv_blocks = 0;  // KV cache blocks in use at most, prompt included
};

// Searches after prompt on sequence seq (whose cache keeps just the prompt
// afterwards, for the next turn). Throws hearth::Error for bad parameters.
BeamSearchResult beam_search(Model& m, int seq, const std::vector<int32_t>& prompt, const BeamSearchParams& p);

}  // namespace hearth
