#include "generate/request_params.h"

#include <cmath>

#include "base/error.h"

namespace hearth {

void check_generation_params(const GenerationParams& p) {
    if (p.n < 1) throw Error("n must be an integer >= 1, got " + std::to_string(p.n), "n");
    if (p.max_tokens == 0 || p.max_tokens < -1) {
        throw Error("max_tokens must be an integer >= 1 or None, got " + std::to_string(p.max_tokens), "max_tokens");
    }
    if (p.min_tokens < 0) throw Error("min_tokens must be an integer >= 0, got " + std::to_string(p.min_tokens), "min_tokens");
    if (p.max_tokens > 0 && p.min_tokens > p.max_tokens) {
        throw Error("min_tokens (" + std::to_string(p.min_tokens) + ") must be <= max_tokens (" +
                        std::to_string(p.max_tokens) + ")",
                    "min_tokens");
    }
    if (p.logprobs < -1) throw Error("logprobs must be an integer >= 0 or None, got " + std::to_string(p.logprobs), "logprobs");
    if (p.prompt_logprobs < -1) {
        throw Error("prompt_logprobs must be an integer >= 0 or None, got " + std::to_string(p.prompt_logprobs),
                    "prompt_logprobs");
    }
    for (int32_t t : p.stop_token_ids) {
        if (t < 0) throw Error("stop_token_ids must be token ids (>= 0), got " + std::to_string(t), "stop_token_ids");
    }
    for (const std::vector<int32_t>& word : p.bad_words_ids) {
        if (word.empty()) throw Error("bad_words: a word of no tokens", "bad_words");
        for (int32_t t : word) {
            if (t < 0) throw Error("bad_words must be token ids (>= 0), got " + std::to_string(t), "bad_words");
        }
    }
}

void check_beam_search_params(const BeamSearchParams& p) {
    if (p.num_beams < 1) throw Error("num_beams must be an integer >= 1, got " + std::to_string(p.num_beams), "num_beams");
    if (!std::isfinite(p.length_penalty)) throw Error("length_penalty must be a finite number", "length_penalty");
}

void check_request_params(const RequestParams& p) {
    check_sampling_params(p.sampling);
    check_generation_params(p.generation);
    check_beam_search_params(p.beam);
    if (p.beam_search()) {
        if (p.generation.n > p.beam.num_beams) {
            throw Error("n must be <= num_beams for beam search, got n=" + std::to_string(p.generation.n) +
                        ", num_beams=" + std::to_string(p.beam.num_beams));
        }
        if (p.generation.logprobs >= 0) throw Error("logprobs are not reported for beam search (num_beams > 1)");
        if (p.generation.constrained) throw Error("structured output does not work with beam search (num_beams > 1)");
        if (p.generation.prompt_logprobs >= 0) throw Error("prompt_logprobs are not reported for beam search (num_beams > 1)");
        if (p.generation.min_tokens > 0) throw Error("min_tokens does not work with beam search (num_beams > 1)", "min_tokens");
        if (!p.generation.bad_words_ids.empty()) {
            throw Error("bad_words does not work with beam search (num_beams > 1)", "bad_words");
        }
        if (!p.sampling.logit_bias.empty()) {
            throw Error("logit_bias does not work with beam search (num_beams > 1)", "logit_bias");
        }
        if (!p.sampling.allowed_token_ids.empty()) {
            throw Error("allowed_token_ids does not work with beam search (num_beams > 1)", "allowed_token_ids");
        }
    }
    if (p.generation.constrained && !p.sampling.allowed_token_ids.empty()) {
        throw Error("allowed_token_ids does not work with structured output: the grammar chooses the allowed tokens",
                    "allowed_token_ids");
    }
    if (p.generation.constrained && p.generation.ignore_eos) {
        throw Error("ignore_eos does not work with structured output: the grammar ends the answer with the end token");
    }
}

EarlyStopping parse_early_stopping(const std::string& s) {
    if (s == "false" || s == "False") return EarlyStopping::Heuristic;
    if (s == "true" || s == "True") return EarlyStopping::Done;
    if (s == "never") return EarlyStopping::Never;
    throw Error("early_stopping must be True, False or 'never', got '" + s + "'", "early_stopping");
}

}  // namespace hearth
