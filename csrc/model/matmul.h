// Y = X · Wᵀ for a weight tensor of the model, on the thread pool.
// Quantized weights take activations quantized to q16a (once per input, shared
// by every matrix that reads the same input: q/k/v, gate/up).
#pragma once

#include <cstdint>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/quant_blocks.h"
#include "base/thread_pool.h"

namespace hearth {

// Activations ready for a matmul: the f32 rows and, when some weight that
// reads them is quantized, their q16a blocks.
struct MatmulInput {
    const float* x = nullptr;
    int64_t n_tokens = 0;
    int64_t k = 0;
    const block_q16a* q = nullptr;  // n_tokens * k/32 blocks, or null
};

class Matmul {
public:
    explicit Matmul(ThreadPool& pool) : pool_(pool) {}

    // Prepares x [n_tokens, k] for the matrices that will read it (quantize:
    // some of them are quantized). The returned input borrows a buffer owned
    // by this object: valid until the next prepare().
    MatmulInput prepare(const float* x, int64_t n_tokens, int64_t k, bool quantize);

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

private:
    ThreadPool& pool_;
    std::vector<block_q16a> qbuf_;
};

}  // namespace hearth
