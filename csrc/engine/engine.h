// The engine loop (vLLM's LLMEngine): requests are added, and each step()
// runs one forward pass over the rows the scheduler chose from all running
// requests (decode rows and prefill chunks), then hands each sequence its
// row of logits to sample, check its stop rules and stream its text. Every
// front end (LLM.generate, LLMEngine, the hearth executable, the server)
// drives this one loop.
//
// A request's output never depends on what else runs with it: the forward
// computes each row the same way whatever the batch, and each sequence has
// its own seeded sampler.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/cache_aligned.h"
#include "engine/kv_cache_manager.h"
#include "engine/scheduler.h"
#include "model/model.h"
#include "text/tokenizer.h"

namespace hearth {

struct EngineConfig {
    int64_t n_ctx = 0;            // tokens a sequence may hold, prompt and output; 0: the model's, at most 4096
    KVType kv_type = KVType::F16;
    // The KV pool, in tokens. 0: n_ctx × min(max_num_seqs, 4), at most 1 GiB
    // unless one n_ctx needs more. Its pages are touched only as blocks are used.
    int64_t kv_cache_tokens = 0;
    int32_t max_num_seqs = 16;
    int64_t max_num_batched_tokens = 512;
    bool enable_prefix_caching = true;
};

// One sequence's new output since the last step (beam search: the whole
// hypothesis, once the search is over).
struct CompletionDelta {
    int index = 0;
    std::vector<int32_t> token_ids;
    std::string text;  // whole UTF-8 characters
    std::vector<std::vector<TokenLogprob>> logprobs;  // per new token, with logprobs: the chosen one, then the top
    std::vector<float> logits;  // with Engine::set_keep_logits: [new tokens, n_vocab], the rows they came from
    bool finished = false;
    FinishReason finish_reason = FinishReason::None;
    std::string stop_string;  // what ended it: a stop string, or a token id (-1: neither)
    int32_t stop_token = -1;
    bool beam_search = false;
    double cumulative_logprob = 0;  // with logprobs, or beam search
    float beam_score = 0;           // beam search: sum of log-probabilities / length ** length_penalty
};

struct RequestOutput {
    std::string request_id;
    std::vector<CompletionDelta> outputs;
    bool finished = false;
    int64_t num_prompt_tokens = 0;
    int64_t num_cached_tokens = 0;  // prompt tokens whose KV came from the prefix cache
    int64_t num_preemptions = 0;
    int64_t peak_kv_blocks = 0;     // KV blocks its sequences held at most (a shared block once)
    // with prompt_logprobs, once: per prompt token after the first, its
    // (id, logprob, rank) then the most likely alternatives
    std::vector<std::vector<TokenLogprob>> prompt_logprobs;
    bool has_prompt_logprobs = false;
    // seconds on steady_clock since the engine started
    double arrival_time = 0, first_scheduled_time = -1, first_token_time = -1, last_token_time = -1, finished_time = -1;
};

struct EngineStats {
    int64_t num_requests_running = 0, num_requests_waiting = 0;
    int64_t kv_blocks_used = 0, kv_blocks_total = 0;
    int64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // tokens
    int64_t prompt_tokens = 0, generation_tokens = 0;
    int64_t num_preemptions = 0;
};

class Engine {
public:
    // tok may be null (a weights-only file): requests then give token ids only.
    Engine(Model& model, const Tokenizer* tok, const EngineConfig& c);

    const EngineConfig& config() const { return c_; }  // with the defaults resolved
    int64_t n_ctx() const { return c_.n_ctx; }
    Model& model() { return model_; }
    const Model& model() const { return model_; }
    size_t kv_cache_bytes() const { return cache_->total_bytes(); }
    size_t kv_block_bytes() const { return cache_->block_bytes(); }

    // Queues a request. Throws hearth::Error (nothing queued) for a bad
    // one: an id in use, an empty prompt or one that leaves no room in the
    // context, a token out of range, parameters out of range, or more
    // sequences than the KV pool can ever hold.
    void add_request(const std::string& id, std::vector<int32_t> prompt, const RequestParams& p);
    // One forward pass over the scheduled rows; the output of every request
    // that has news (new tokens, or finished). Finished requests are gone
    // after this.
    std::vector<RequestOutput> step();
    // Structured output: the tokens completion `index` of a constrained
    // request may take next (bit t % 32 of word t / 32 for token t). Each
    // mask serves one token; the next step needs a new one.
    void allow_tokens(const std::string& id, int index, std::vector<uint32_t> mask);
    // Drops a request and gives its blocks back at once; false when unknown.
    bool abort_request(const std::string& id);
    bool has_unfinished_requests() const { return !requests_.empty(); }
    EngineStats stats() const;
    // Tests: hand each sampled token's row of logits out with the output
    // (batch invariance is checked on them, bit for bit).
    void set_keep_logits(bool on) { keep_logits_ = on; }

    // The low-level surface (llm.eval): tokens appended to a sequence of its
    // own, outside the scheduler; logits of every row or of the last.
    void eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits);
    void reset();  // empties that sequence
    int64_t n_past() const { return (int64_t)eval_tokens_.size(); }

private:
    double now() const;
    // A row of logits for a sequence that reached its last token.
    struct Draw {
        Request* req;
        Sequence* seq;
        const float* logits;
    };
    void accept(Request& r, Sequence& s, const float* logits, std::vector<Draw>& draws);
    void record(Request& r, Sequence& s, GeneratedToken& t, const float* logits);
    void start_beams(Request& r, Sequence& s, const float* logits);
    void beam_step(Request& r);
    void finish_sequence(Sequence& s);
    void finish(Request& r);
    RequestOutput take_output(Request& r);
    uint64_t seed_for(const Request& r, int index) const;
    void note_kv_blocks(Request& r) const;
    bool wants_prompt_logprobs(const Request& r, int64_t pos) const;
    // the ids of allowed_token_ids and logit_bias are in the vocabulary, and
    // min_tokens can be reached with the allowed tokens
    void check_token_ids(const RequestParams& p) const;

    Model& model_;
    const Tokenizer* tok_;
    EngineConfig c_;
    std::unique_ptr<KVCache> cache_;
    KVCacheManager kv_;
    Scheduler sched_;
    std::map<std::string, std::unique_ptr<Request>> requests_;
    std::chrono::steady_clock::time_point t0_;
    Batch batch_;
    CacheAlignedVector<float> logits_;  // the output matmul writes it a line at a time
    int64_t prompt_tokens_ = 0, generation_tokens_ = 0;
    bool keep_logits_ = false;

    int eval_seq_ = -1;
    std::vector<int32_t> eval_tokens_;
};

// n_ctx when none is asked for: the model's training context, at most 4096.
int64_t default_n_ctx(const HParams& hp);

}  // namespace hearth
