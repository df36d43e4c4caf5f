// Beam search as Hugging Face's generate(num_beams=k, do_sample=False)
// runs it (transformers 5): each step keeps the 2k best continuations of all
// beams by summed log-probability, finishes those that end (an end token or
// the length limit) into a list of the k best hypotheses scored
// sum / length ** length_penalty, and goes on with the k best that did not
// end, until no running beam can beat the finished ones.
//
// This is the search alone: it is given each running beam's row of logits
// and says which beams go on with which token. The engine runs the beams as
// sequences that share their common prefix's KV blocks (copy on write), all
// in one forward pass per step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "generate/completion.h"
#include "generate/request_params.h"
#include "text/tokenizer.h"

namespace hearth {

struct Hypothesis {
    std::vector<int32_t> tokens;    // the new tokens, the end token included when one ended it
    float score = 0;                // sum of (penalized) log-probabilities / length ** length_penalty
    double cumulative_logprob = 0;  // sum of the tokens' log-probabilities under the model
    std::vector<float> token_logprobs;  // each token's, in order (their sum, in double, is cumulative_logprob)
};

class BeamSearch {
public:
    // After prompt, hypotheses of at most max_length tokens in all (prompt
    // included); eos: the tokens that end a hypothesis.
    BeamSearch(const BeamSearchParams& p, float repetition_penalty, const std::vector<int32_t>& prompt,
               int64_t max_length, std::vector<int32_t> eos);

    int num_beams() const { return k_; }

    struct Choice {
        int source;     // the running beam it continues
        int32_t token;  // its new token
    };
    // One step: logits[b] is the row [n_vocab] of running beam b's next
    // token (at the first step every beam is the prompt). Returns true with
    // the next running beams in `next`, or false once the search is over.
    bool step(const std::vector<const float*>& logits, int64_t n_vocab, std::vector<Choice>& next);

    // The num_beams best hypotheses, best first (once step() returned false).
    std::vector<Hypothesis> hypotheses() const;

private:
    struct Beam {
        std::vector<int32_t> tokens;
        std::vector<float> token_logprobs;
        float score = 0;        // accumulated (penalized) log-probability
        double logprob = 0;     // accumulated log-probability
    };
    struct Finished {
        Hypothesis h;
        bool done = false;
    };

    BeamSearchParams p_;
    float repetition_penalty_;
    const std::vector<int32_t>& prompt_;
    int64_t max_length_;
    std::vector<int32_t> eos_;
    int k_;
    int n_keep_;  // candidates kept per step
    int64_t cur_len_;
    bool improvable_ = true;
    std::vector<Beam> running_;
    std::vector<Finished> finished_;
};

// What a finished hypothesis shows: its text (control tokens shown unless
// skip_special_tokens, cut before the first stop string, which it keeps with
// include_stop_str_in_output), its tokens (up to the one that completed that
// stop string, as in sampling), why it ended and what ended it. The one
// post-processing of beam search, for the hearth executable and Python alike.
// Without a tokenizer the text is empty.
struct BeamText {
    std::string text;
    size_t n_tokens = 0;  // the hypothesis' first n_tokens are the output's token ids
    double cumulative_logprob = 0;  // theirs
    FinishReason finish_reason = FinishReason::Length;
    std::string stop_string;
    int32_t stop_token = -1;
};
BeamText beam_text(const Tokenizer* tok, const Hypothesis& h, const GenerationParams& p, const std::vector<int32_t>& eos);

}  // namespace hearth
