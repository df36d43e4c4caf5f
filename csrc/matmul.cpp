#include "matmul.h"

#include <algorithm>

#include "common.h"
#include "kernels/kernels.h"

namespace hearth {

namespace {
// Rows per task. A multiple of every kernel's row tile, so that the tiling of
// a row never depends on how rows were shared between threads (the kernels
// promise that anyway; this keeps their edge paths off the hot path).
constexpr int64_t kRowsPerTask = 64;
}  // namespace

MatmulInput Matmul::prepare(const float* x, int64_t n_tokens, int64_t k, bool quantize, int slot) {
    MatmulInput in;
    in.x = x;
    in.n_tokens = n_tokens;
    in.k = k;
    if (quantize) {
        HEARTH_CHECK(k % QK == 0, "activation row length " + std::to_string(k) + " is not a multiple of 32");
        const int64_t nb = k / QK;
        std::vector<block_q8a>& buf = qbuf_[slot];
        if ((int64_t)buf.size() < n_tokens * nb) buf.resize(n_tokens * nb);
        block_q8a* q = buf.data();
        const KernelTable& kt = kernels();
        pool_.parallel_for(n_tokens, [&](int64_t t) { kt.quantize_q8a(x + t * k, q + t * nb, k); });
        in.q = q;
    }
    return in;
}

void Matmul::run(const GGUFTensor& w, const MatmulInput& in, float* y, int64_t y_stride) {
    const int64_t rows = w.rows();
    HEARTH_CHECK(w.ne[0] == in.k, "matmul: tensor '" + w.name + "' has rows of " + std::to_string(w.ne[0]) +
                                      " but the input has " + std::to_string(in.k));
    MatmulArgs a;
    a.w_type = w.type;
    a.w = w.data;
    a.w_row_bytes = row_bytes(w.type, w.ne[0]);
    if (is_quantized(w.type)) {
        HEARTH_CHECK(in.q != nullptr, "matmul: input not quantized for '" + w.name + "'");
        a.x = in.q;
        a.x_row_bytes = (size_t)(in.k / QK) * sizeof(block_q8a);
    } else {
        a.x = in.x;
        a.x_row_bytes = (size_t)in.k * sizeof(float);
    }
    a.y = y;
    a.y_stride = y_stride;
    a.k = in.k;
    a.n_tokens = in.n_tokens;
    const KernelTable& kt = kernels();
    const int64_t n_tasks = (rows + kRowsPerTask - 1) / kRowsPerTask;
    pool_.parallel_for(n_tasks, [&](int64_t task) {
        MatmulArgs t = a;
        t.r0 = task * kRowsPerTask;
        t.r1 = std::min(rows, t.r0 + kRowsPerTask);
        kt.matmul(t);
    });
}

}  // namespace hearth
