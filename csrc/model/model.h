// A loaded model: the mapped file, its weights, and the one forward pass
// that every architecture shares (llama2.c's shape: embed, then per layer
// attention and feed-forward around RMSNorms, then the logits). The forward
// runs a batch of rows from any number of sequences; the KV cache it writes
// into, and which blocks belong to which sequence, are the caller's (the
// engine's).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/cache_aligned.h"
#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "model/batch.h"
#include "model/hparams.h"
#include "model/kv_cache.h"
#include "model/matmul.h"
#include "model/ops.h"
#include "model/weights.h"

namespace hearth {

struct ModelOptions {
    int n_threads = 0;  // 0: one per available CPU
    // Activations of the quantized matmuls: Q8 (fast, as llama.cpp) or Q16
    // (exact: nearly no activation rounding). Fixed for the model's life.
    Activations activations = Activations::Q8;
};

class Model {
public:
    static std::unique_ptr<Model> load(const std::string& path, const ModelOptions& opts);

    const GGUFFile& file() const { return *file_; }
    const HParams& hparams() const { return hp_; }
    int64_t n_vocab() const { return hp_.n_vocab; }
    int n_threads() const { return pool_.size(); }
    Activations activations() const { return mm_.activations(); }
    // The model's threads, for work between forward passes (the engine
    // samples its sequences on them).
    ThreadPool& thread_pool() { return pool_; }

    // A KV cache of n_blocks blocks shaped for this model.
    std::unique_ptr<KVCache> new_kv_cache(KVType type, int64_t n_blocks) const;

    // Runs the batch's rows: writes each row's key and value into its
    // sequence's blocks of cache, and the logits of the rows that want them
    // into logits, [b.n_logits(), n_vocab] in row order. A row's logits (and
    // what it writes) are bit-identical whatever else the batch holds and
    // however many threads run it. Throws hearth::Error for a bad batch (a
    // token out of range, a position its block table does not cover).
    void decode(const Batch& b, KVCache& cache, float* logits);

private:
    Model(std::unique_ptr<GGUFFile> file, const ModelOptions& opts);
    void check_batch(const Batch& b, const KVCache& cache) const;
    // Rows [row0, row0 + n) of the batch (n <= kMaxBatch); the logits of
    // those that want them go to logits.
    void forward(const Batch& b, int64_t row0, int64_t n, KVCache& cache, float* logits);
    void post_norm(float* rows, int64_t n, const GGUFTensor* weight);
    void ensure_scratch(int64_t n);

    std::unique_ptr<GGUFFile> file_;
    HParams hp_;
    ModelWeights w_;
    ThreadPool pool_;
    Matmul mm_;

    std::vector<double> rope_inv_freq_;
    std::vector<RopeAngles> rope_angles_;  // per row of the chunk

    // activations for a chunk, [n, width] each, each starting on a cache line
    int64_t scratch_tokens_ = 0;
    CacheAlignedVector<float> x_, xn_, q_, k_, v_, attn_, gate_, up_;
};

}  // namespace hearth
