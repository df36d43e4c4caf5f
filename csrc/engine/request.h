// A request as the engine holds it (vLLM's Request): the prompt, what it
// asks for, and its sequences. A sampling request runs one sequence until
// its prompt is computed, then n (forks sharing the prompt's KV blocks); a
// beam-search request runs num_beams. Each sequence knows its tokens and how
// many of them its KV blocks hold: the scheduler gives it the rest, a
// prompt chunk or one decode token at a time, and after a preemption all of
// them again.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "generate/beam_search.h"
#include "generate/completion.h"
#include "generate/request_params.h"

namespace hearth {

enum class RequestStatus { Waiting, Running, Finished };

struct Sequence {
    int kv = -1;                  // its block table in the KVCacheManager; -1 while it holds none
    std::vector<int32_t> tokens;  // the prompt, then what was generated
    int64_t n_computed = 0;       // tokens whose keys and values are in its blocks
    int index = 0;                // its completion's index among the request's n
    bool finished = false;
    std::unique_ptr<Completion> completion;  // sampling: its sampler, stop rules, text (null for beams)
    std::vector<float> logits;    // beam search: its row, kept until every beam has one
    bool has_logits = false;

    // not yet reported by Engine::step()
    std::vector<int32_t> new_tokens;
    std::string new_text;
    std::vector<std::vector<TokenLogprob>> new_logprobs;
    std::vector<float> new_logits;  // with Engine::keep_logits: the rows the new tokens came from

    int64_t to_compute() const { return (int64_t)tokens.size() - n_computed; }
};

struct Request {
    std::string id;
    std::vector<int32_t> prompt;
    RequestParams params;
    std::vector<int32_t> eos;       // the tokens that end a completion (beam search)
    RequestStatus status = RequestStatus::Waiting;
    std::vector<std::unique_ptr<Sequence>> seqs;
    bool forked = false;            // the prompt's sequence became n samples / num_beams beams
    std::unique_ptr<BeamSearch> beams;
    std::vector<Hypothesis> hypotheses;  // beam search, once over
    int64_t num_cached_tokens = -1; // prompt tokens found in the prefix cache when first scheduled
    int64_t num_preemptions = 0;
    int64_t peak_kv_blocks = 0;     // KV blocks its sequences held at most (a shared block once)
    // structured output: per completion index, the mask of the tokens its
    // next token may be (one bit per token id), consumed by that token
    std::vector<std::vector<uint32_t>> allowed;
    // prompt_logprobs: entry i for prompt token i + 1 (computed once, from
    // the row of token i; a preempted request does not compute them again),
    // reported with the first output after they are all there
    std::vector<std::vector<TokenLogprob>> prompt_logprobs;
    bool prompt_logprobs_reported = false;

    // seconds on the engine's clock
    double arrival_time = 0, first_scheduled_time = -1, first_token_time = -1, last_token_time = -1, finished_time = -1;

    bool finished() const { return status == RequestStatus::Finished; }
    // It asked for prompt_logprobs and some prompt rows are still to score.
    bool prompt_logprobs_pending() const {
        return params.generation.prompt_logprobs >= 0 && (int64_t)prompt_logprobs.size() + 1 < (int64_t)prompt.size();
    }
};

}  // namespace hearth
