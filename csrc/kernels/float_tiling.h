// The loop that walks a float-weight matmul in tiles, shared by the per-ISA
// kernel files. It only calls Ops::tile, so it holds no SIMD itself; it lives
// in an anonymous namespace so each kernel file gets its own copy, compiled
// with that file's flags and invisible to the linker elsewhere.
#pragma once

#include <cstdint>

#include "kernels/kernels.h"

namespace hearth {
namespace {

// Float weights: activations are f32 rows (4 k bytes per token), too big to
// stream from L2 for every row tile. So block the other way: a chunk of
// weight rows that fits in L2, and for each tile of T tokens (in L1) all the
// chunk's row tiles.
template <class Ops, int R, int T, int RD>
void matmul_float(const MatmulArgs& a) {
    const int64_t r0 = a.r0, r1 = a.r1, nt = a.n_tokens;
    if (nt == 1) {
        int64_t r = r0;
        for (; r + RD <= r1; r += RD) Ops::template tile<RD, 1>(a, r, 0);
        for (; r < r1; r++) Ops::template tile<1, 1>(a, r, 0);
        return;
    }
    int64_t rchunk = (int64_t)((1024 * 1024) / (a.w_row_bytes ? a.w_row_bytes : 1));
    rchunk = rchunk < R ? R : rchunk / R * R;
    for (int64_t c0 = r0; c0 < r1; c0 += rchunk) {
        const int64_t c1 = c0 + rchunk < r1 ? c0 + rchunk : r1;
        int64_t t = 0;
        for (; t + T <= nt; t += T) {
            int64_t r = c0;
            for (; r + R <= c1; r += R) Ops::template tile<R, T>(a, r, t);
            for (; r < c1; r++) Ops::template tile<1, T>(a, r, t);
        }
        for (; t < nt; t++) {
            int64_t r = c0;
            for (; r + R <= c1; r += R) Ops::template tile<R, 1>(a, r, t);
            for (; r < c1; r++) Ops::template tile<1, 1>(a, r, t);
        }
    }
}

}  // namespace
}  // namespace hearth
