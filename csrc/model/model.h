// A loaded model: the mapped file, its weights, the KV cache, and the one
// forward pass that every architecture shares (llama2.c's shape: embed, then
// per layer attention and feed-forward around RMSNorms, then the logits).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/matmul.h"
#include "model/ops.h"
#include "base/thread_pool.h"
#include "text/tokenizer.h"
#include "model/weights.h"

namespace hearth {

struct ModelOptions {
    int n_threads = 0;      // 0: one per available CPU
    int64_t n_ctx = 0;      // 0: min(training context, 4096)
    KVType kv_type = KVType::F16;
};

class Model {
public:
    static std::unique_ptr<Model> load(const std::string& path, const ModelOptions& opts);

    const GGUFFile& file() const { return *file_; }
    // The file's tokenizer, or null for a weights-only file.
    const Tokenizer* tokenizer() const { return tokenizer_.get(); }
    const HParams& hparams() const { return hp_; }
    int64_t n_vocab() const { return hp_.n_vocab; }
    int64_t n_ctx() const { return n_ctx_; }
    int n_threads() const { return pool_.size(); }
    KVType kv_type() const { return cache_.type(); }
    size_t kv_cache_bytes() const { return cache_.total_bytes(); }
    int64_t n_past() const { return cache_.length(seq_); }

    // Appends tokens to the default sequence in the cache and writes their
    // logits: all rows [n, n_vocab] when all_logits, else the last row only.
    void eval(const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
        eval_on(seq_, tokens, n, logits, all_logits);
    }
    // The same on another sequence.
    void eval_on(int seq, const int32_t* tokens, int64_t n, float* logits, bool all_logits);
    // Empties the cache.
    void reset();

    // More sequences in the one cache (beams, parallel samples): a fork
    // shares the blocks of its source's prefix until one of them writes.
    // Handle default_sequence() is the one eval() uses.
    int default_sequence() const { return seq_; }
    int new_sequence();
    int fork_sequence(int seq);
    void free_sequence(int seq);
    int64_t seq_length(int seq) const { return cache_.length(seq); }
    // The tokens whose keys and values the sequence holds.
    const std::vector<int32_t>& seq_tokens(int seq) const { return history_[seq]; }
    // Keeps the first n positions of the sequence (a rewind: multi-turn chat
    // reuses the common prefix of the conversation).
    void truncate(int seq, int64_t n);
    // Appends token i to sequence seqs[i] (a sequence's tokens in order) and
    // writes every token's logits [n, n_vocab]: several sequences advance in
    // one pass, which reads the weights once for all of them.
    void eval_seqs(const int32_t* tokens, const int* seqs, int64_t n, float* logits);
    // KV cache blocks in use (each KVCache::kBlockTokens positions).
    int64_t kv_blocks_in_use() const { return cache_.used_blocks(); }
    size_t kv_block_bytes() const { return cache_.block_bytes(); }
    // Greedy continuation of the cache's sequence (after feeding prompt):
    // up to max_tokens new ids; stops after the EOS token when stop_at_eos.
    std::vector<int32_t> generate_greedy(const std::vector<int32_t>& prompt, int64_t max_tokens, bool stop_at_eos);

private:
    Model(std::unique_ptr<GGUFFile> file, const ModelOptions& opts);
    // Appends tokens[i] to seqs[i]; logits of every row or the last only.
    void eval_impl(const int32_t* tokens, const int* seqs, int64_t n, float* logits, bool all_logits);
    // One forward pass over n tokens (n <= kMaxBatch): token t at position
    // pos[t] of sequence seqs[t], whose cache room is already made.
    void forward(const int32_t* tokens, const int* seqs, const int64_t* pos, int64_t n, float* logits, bool all_logits);
    void check_sequence(int seq) const;
    void ensure_scratch(int64_t n);

    std::unique_ptr<GGUFFile> file_;
    HParams hp_;
    ModelWeights w_;
    std::unique_ptr<Tokenizer> tokenizer_;
    int64_t n_ctx_;
    ThreadPool pool_;
    Matmul mm_;
    KVCache cache_;
    int seq_;
    std::vector<std::vector<int32_t>> history_;  // per sequence handle: its tokens

    std::vector<double> rope_inv_freq_;
    std::vector<RopeAngles> rope_angles_;  // per token of the batch

    // activations for a batch, [n, width] each
    int64_t scratch_tokens_ = 0;
    std::vector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_;
};

}  // namespace hearth
