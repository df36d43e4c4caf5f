// Y = X · Wᵀ for a weight tensor of the model, on the thread pool.
// Quantized weights take quantized activations (once per input, shared by
// every matrix that reads the same input: q/k/v, gate/up): 8-bit q8a packed
// in the kernel set's layout (the fast path) or 16-bit q16a (the exact path),
// as the model was loaded with.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>
#include <vector>

#include "base/cache_aligned.h"
#include "base/page_buffer.h"
#include "base/thread_pool.h"
#include "gguf/gguf.h"
#include "gguf/quant_blocks.h"
#include "kernels/kernels.h"

namespace hearth {

// Activations ready for a matmul: the f32 rows and, when some weight that
// reads them is quantized, their quantized rows.
struct MatmulInput {
    const float* x = nullptr;
    int64_t n_tokens = 0;
    int64_t k = 0;
    const void* q = nullptr;  // n_tokens rows of q_row_bytes, or null
    size_t q_row_bytes = 0;
    Activations q_type = Activations::Q8;
};

class Matmul {
public:
    // file: where the weights live, to give back the pages of those this
    // object keeps packed copies of (null: keep them).
    Matmul(ThreadPool& pool, Activations act, const GGUFFile* file = nullptr) : pool_(pool), act_(act), file_(file) {}
    Activations activations() const { return act_; }

    // Prepares x [n_tokens, k] for the matrices that will read it (quantize:
    // some of them are quantized). The returned input borrows a buffer owned
    // by this object: valid until the next prepare(). make_row, when given,
    // writes row t of x first (the norm or activation before a matmul), in
    // the task that then quantizes it: one pass over the pool, not two.
    MatmulInput prepare(const float* x, int64_t n_tokens, int64_t k, bool quantize,
                        const std::function<void(int64_t)>& make_row = nullptr);

    // y[t * y_stride + r] = sum_k W[r, k] x[t, k], for all rows r of W.
    void run(const GGUFTensor& w, const MatmulInput& in, float* y, int64_t y_stride);

    // Several matrices reading the same input (q/k/v, gate/up) in one pass
    // over the pool: one wake-up instead of several, and the threads share
    // the rows of all of them, which balances small matrices.
    struct Output {
        const GGUFTensor* w;
        float* y;
        int64_t y_stride;
    };
    void run_many(const Output* outs, int n_outs, const MatmulInput& in);

    // On the Q8 path of a kernel set that repacks quantized weights
    // (KernelTable::pack_q8a_weights), copies the quantized ones of ws into
    // its layout, once, on the pool; the model does this for all its matrices
    // at load, and run() takes only those. The file's pages of the packed
    // tensors are given back: the copy takes their place in memory.
    void pack_weights(const std::vector<const GGUFTensor*>& ws);

private:
    // The bytes the kernels read for w: its packed copy when the set in use
    // packs, else the file's.
    const void* weight_data(const GGUFTensor& w, const KernelTable& kt);
    void repack(const KernelTable& kt);

    ThreadPool& pool_;
    Activations act_;
    const GGUFFile* file_;
    // the packed weights, one tensor after another, and which set packed
    // them (tests switch sets: another set packs again, in place)
    PageBuffer packed_w_;
    std::unordered_map<const GGUFTensor*, size_t> packed_at_;
    decltype(KernelTable::pack_q8a_weights) packed_by_ = nullptr;
    std::vector<block_q16a> q16_;         // the exact path's rows
    CacheAlignedVector<uint8_t> packed_;  // the fast path's, packed for the kernels, rows on cache lines
    // Whether some packed weight reads the packed rows' groups
    // (reads_activation_groups): when none does, prepare() leaves them out
    // (SmolLM2's q4_1 prompts: ~6 % of their time writing them and the
    // blocks before packing).
    bool groups_read_ = false;
};

}  // namespace hearth
