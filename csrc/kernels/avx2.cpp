// The AVX2 kernels (compiled with -mavx2 -mfma -mf16c; chosen at run time).
//
// Everything here has internal linkage (anonymous namespace) except
// avx2_kernels(), and no STL header is included: an inline function compiled
// with these flags must never be picked by the linker for the portable code.
//
// Determinism: every matmul output (row r, token t) is computed by the same
// instruction sequence whatever tile it falls in. All tiles come from one
// template (tile<R, T>) whose per-(row, token) arithmetic is: one 8-lane f32
// accumulator, updated block by block (or 8 floats by 8 floats) in order,
// then hsum8() in a fixed order. R and T only change how many (row, token)
// pairs run side by side, never the arithmetic of one pair. The file is
// compiled with -ffp-contract=off (GCC fuses even intrinsic mul + add
// otherwise): an FMA happens only where an fmadd intrinsic asks for it, the
// same in every instantiation.
#include <immintrin.h>

#include <cfloat>
#include <cstdint>
#include <cstring>

#include "base/fp16.h"
#include "kernels/float_tiling.h"
#include "gguf/k_quants.h"
#include "kernels/kernels.h"
#include "kernels/sampler_exp.h"

namespace hearth {
namespace {

// ---------------------------------------------------------------- helpers --

inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline __m256 bcast_f16(uint16_t h) { return _mm256_set1_ps(_cvtsh_ss(h)); }

// ------------------------------------------------------ quantized weights --
// The activations are int16 (q16a), so a weight block is widened to int16
// too, as two ymm (elements 0-15 and 16-31), and vpmaddwd multiplies pairs:
// each of the 8 int32 lanes sums 4 products. Each policy prepares a weight
// block (per row, shared by the tile's tokens), an activation block (per
// token, shared by the tile's rows), and updates one (row, token)
// accumulator.

struct Halves {
    __m256i lo, hi;  // elements 0-15, 16-31
};

// 8 int32 partial sums of the int16 products w * x over a block.
inline __m256i dot_s16(const Halves& w, const Halves& x) {
    return _mm256_add_epi32(_mm256_madd_epi16(w.lo, x.lo), _mm256_madd_epi16(w.hi, x.hi));
}

// q4 nibbles (byte j holds element j low, j + 16 high) as int16.
inline Halves widen_nibbles(const uint8_t* qs) {
    const __m128i q = _mm_loadu_si128((const __m128i*)qs);
    const __m128i m = _mm_set1_epi8(0x0f);
    return Halves{_mm256_cvtepu8_epi16(_mm_and_si128(q, m)), _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(q, 4), m))};
}

inline Halves load_x_halves(const block_q16a* b) {
    return Halves{_mm256_loadu_si256((const __m256i*)b->qs), _mm256_loadu_si256((const __m256i*)(b->qs + 16))};
}

struct Q8_0 {
    using Block = block_q8_0;
    struct W { Halves q; __m256 d; };
    struct X { Halves q; __m256 d; };
    static W load_w(const Block* b) {
        return W{Halves{_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)b->qs)),
                        _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i*)(b->qs + 16)))},
                 bcast_f16(b->d)};
    }
    static X load_x(const block_q16a* b) { return X{load_x_halves(b), _mm256_broadcast_ss(&b->d)}; }
    static void step(const W& w, const X& x, __m256& acc) {
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_s16(w.q, x.q)), _mm256_mul_ps(w.d, x.d), acc);
    }
};

struct Q4_0 {
    using Block = block_q4_0;
    struct W { Halves q; __m256 d; };
    struct X { Halves q; __m256i corr; __m256 d; };
    static W load_w(const Block* b) { return W{widen_nibbles(b->qs), bcast_f16(b->d)}; }
    static X load_x(const block_q16a* b) {
        X x;
        x.q = load_x_halves(b);
        // The nibbles are q + 8: subtract 8 * x lane by lane (not 8 * sum(x) in one
        // lane), so that every int32 lane holds an exact partial sum of (q - 8) * x
        // and the float sum over lanes does not cancel large offsets.
        const __m256i minus8 = _mm256_set1_epi16(-8);
        x.corr = dot_s16(Halves{minus8, minus8}, x.q);
        x.d = _mm256_broadcast_ss(&b->d);
        return x;
    }
    static void step(const W& w, const X& x, __m256& acc) {
        const __m256i p = _mm256_add_epi32(dot_s16(w.q, x.q), x.corr);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(w.d, x.d), acc);
    }
};

struct Q4_1 {
    using Block = block_q4_1;
    struct W { Halves q; __m256 d, m; };
    struct X { Halves q; __m256 d, s; };
    static W load_w(const Block* b) { return W{widen_nibbles(b->qs), bcast_f16(b->d), bcast_f16(b->m)}; }
    static X load_x(const block_q16a* b) {
        X x;
        x.q = load_x_halves(b);
        x.d = _mm256_broadcast_ss(&b->d);
        // lane 0: d_x * sum(x); the other lanes 0, so that m * s adds m d_x sum once
        x.s = _mm256_castps128_ps256(_mm_mul_ss(_mm_load_ss(&b->d), _mm_cvtsi32_ss(_mm_setzero_ps(), b->sum)));
        x.s = _mm256_blend_ps(_mm256_setzero_ps(), x.s, 1);
        return x;
    }
    static void step(const W& w, const X& x, __m256& acc) {
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_s16(w.q, x.q)), _mm256_mul_ps(w.d, x.d), acc);
        acc = _mm256_fmadd_ps(w.m, x.s, acc);
    }
};

template <class Q>
struct QuantOps {
    // rows [r, r+R) x tokens [t, t+T)
    template <int R, int T>
    static void tile(const MatmulArgs& a, int64_t r, int64_t t) {
        const int64_t nb = a.k / QK;
        const typename Q::Block* wr[R];
        const block_q16a* xr[T];
        for (int i = 0; i < R; i++) wr[i] = (const typename Q::Block*)((const char*)a.w + (r + i) * a.w_row_bytes);
        for (int j = 0; j < T; j++) xr[j] = (const block_q16a*)((const char*)a.x + (t + j) * a.x_row_bytes);
        __m256 acc[R][T];
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; b++) {
            typename Q::W w[R];
            if (T == 1)  // decode streams the weights once: fetch the next tile's rows ahead
                for (int i = 0; i < R; i++) _mm_prefetch((const char*)(wr[i] + b) + R * a.w_row_bytes, _MM_HINT_T0);
            for (int i = 0; i < R; i++) w[i] = Q::load_w(wr[i] + b);
            for (int j = 0; j < T; j++) {
                const typename Q::X x = Q::load_x(xr[j] + b);
                for (int i = 0; i < R; i++) Q::step(w[i], x, acc[i][j]);
            }
        }
        for (int j = 0; j < T; j++)
            for (int i = 0; i < R; i++) a.y[(t + j) * a.y_stride + r + i] = hsum8(acc[i][j]);
    }
};

// ---------------------------------------------------------- float weights --
// 8 weights at a time as f32 (a short tail is copied into a zero-padded buffer first).

struct F32W {
    using T = float;
    static __m256 load(const float* p) { return _mm256_loadu_ps(p); }
};
struct F16W {
    using T = uint16_t;
    static __m256 load(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }
};
struct BF16W {
    using T = uint16_t;
    static __m256 load(const uint16_t* p) {
        const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)p));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
};

template <class F>
struct FloatOps {
    using E = typename F::T;
    template <int R, int T>
    static void tile(const MatmulArgs& a, int64_t r, int64_t t) {
        const int64_t k = a.k;
        const E* wr[R];
        const float* xr[T];
        for (int i = 0; i < R; i++) wr[i] = (const E*)((const char*)a.w + (r + i) * a.w_row_bytes);
        for (int j = 0; j < T; j++) xr[j] = (const float*)((const char*)a.x + (t + j) * a.x_row_bytes);
        __m256 acc[R][T];
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
        int64_t kk = 0;
        for (; kk + 8 <= k; kk += 8) {
            __m256 w[R];
            for (int i = 0; i < R; i++) w[i] = F::load(wr[i] + kk);
            for (int j = 0; j < T; j++) {
                const __m256 x = _mm256_loadu_ps(xr[j] + kk);
                for (int i = 0; i < R; i++) acc[i][j] = _mm256_fmadd_ps(w[i], x, acc[i][j]);
            }
        }
        if (kk < k) {  // tail: zero-padded copies, same arithmetic for every tile
            const int n = (int)(k - kk);
            __m256 w[R];
            for (int i = 0; i < R; i++) {
                alignas(32) E tmp[8] = {};
                std::memcpy(tmp, wr[i] + kk, n * sizeof(E));
                w[i] = F::load(tmp);
            }
            for (int j = 0; j < T; j++) {
                alignas(32) float tmp[8] = {};
                std::memcpy(tmp, xr[j] + kk, n * sizeof(float));
                const __m256 x = _mm256_load_ps(tmp);
                for (int i = 0; i < R; i++) acc[i][j] = _mm256_fmadd_ps(w[i], x, acc[i][j]);
            }
        }
        for (int j = 0; j < T; j++)
            for (int i = 0; i < R; i++) a.y[(t + j) * a.y_stride + r + i] = hsum8(acc[i][j]);
    }
};

// ------------------------------------------------------------ the driver --
// R x T tiles for prefill, RD x 1 for decode, R x 1 / 1 x T / 1 x 1 at the
// edges. Tokens are processed in chunks whose activations fit in L2, so that
// the weights of a row tile stay in L1 while the chunk's tokens stream by.
template <class Ops, int R, int T, int RD>
void matmul_tiled(const MatmulArgs& a) {
    const int64_t r0 = a.r0, r1 = a.r1, nt = a.n_tokens;
    if (nt == 1) {
        int64_t r = r0;
        for (; r + RD <= r1; r += RD) Ops::template tile<RD, 1>(a, r, 0);
        for (; r < r1; r++) Ops::template tile<1, 1>(a, r, 0);
        return;
    }
    int64_t chunk = (int64_t)((256 * 1024) / (a.x_row_bytes ? a.x_row_bytes : 1));
    chunk = chunk < T ? T : chunk / T * T;
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        const int64_t t1 = t0 + chunk < nt ? t0 + chunk : nt;
        int64_t r = r0;
        for (; r + R <= r1; r += R) {
            int64_t t = t0;
            for (; t + T <= t1; t += T) Ops::template tile<R, T>(a, r, t);
            for (; t < t1; t++) Ops::template tile<R, 1>(a, r, t);
        }
        for (; r < r1; r++) {
            int64_t t = t0;
            for (; t + T <= t1; t += T) Ops::template tile<1, T>(a, r, t);
            for (; t < t1; t++) Ops::template tile<1, 1>(a, r, t);
        }
    }
}

void matmul(const MatmulArgs& a) {
    if (is_quantized(a.w_type) && a.x_type == Activations::Q8) return avx2_matmul_q8a(a);
    // the exact path has no SIMD form for the five-bit types and the K-quants
    // yet: the reference's
    if (is_k_quant(a.w_type) || a.w_type == GgmlType::Q5_0 || a.w_type == GgmlType::Q5_1)
        return scalar_kernels().matmul(a);
    switch (a.w_type) {
        case GgmlType::F32: return matmul_float<FloatOps<F32W>, 3, 4, 4>(a);
        case GgmlType::F16: return matmul_float<FloatOps<F16W>, 3, 4, 4>(a);
        case GgmlType::BF16: return matmul_float<FloatOps<BF16W>, 3, 4, 4>(a);
        case GgmlType::Q8_0: return matmul_tiled<QuantOps<Q8_0>, 2, 4, 4>(a);
        case GgmlType::Q4_0: return matmul_tiled<QuantOps<Q4_0>, 2, 4, 4>(a);
        case GgmlType::Q4_1: return matmul_tiled<QuantOps<Q4_1>, 2, 4, 4>(a);
    }
}

// ------------------------------------------------------------- quantize --
// Bit-identical with the scalar reference: the same max, the same scalar
// d = amax / kMax and id = 1 / d, the same product x * id, and round half away
// from zero done exactly (trunc, then +-1 when the dropped fraction is >= 0.5).
// q16a (kMax 32767) and q8a (kMax 127): the same rounding, another width.
template <int kMax, typename Block>
void quantize_activations(const float* x, Block* y, int64_t k) {
    const __m256 sign_mask = _mm256_set1_ps(-0.0f);
    const __m256 half = _mm256_set1_ps(0.5f);
    const __m256 one = _mm256_set1_ps(1.0f);
    for (int64_t b = 0; b < k / QK; b++) {
        const float* xb = x + b * QK;
        __m256 v[4];
        for (int i = 0; i < 4; i++) v[i] = _mm256_loadu_ps(xb + 8 * i);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign_mask, v[0]), _mm256_andnot_ps(sign_mask, v[1])),
                                 _mm256_max_ps(_mm256_andnot_ps(sign_mask, v[2]), _mm256_andnot_ps(sign_mask, v[3])));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float amax = _mm_cvtss_f32(m4);
        const float d = amax < kQ16aTiny ? 0.0f : amax / (float)kMax;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++) {
            const __m256 p = _mm256_mul_ps(v[i], vid);
            const __m256 tr = _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m256 frac = _mm256_andnot_ps(sign_mask, _mm256_sub_ps(p, tr));
            const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ),
                                            _mm256_or_ps(one, _mm256_and_ps(p, sign_mask)));
            q[i] = _mm256_cvttps_epi32(_mm256_add_ps(tr, up));
        }
        // int32 -> int16 or int8 (values within +-kMax); the packs interleave
        // 128-bit lanes, a permute restores the order
        if constexpr (kMax == 127) {
            const __m256i b8 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
            _mm256_storeu_si256((__m256i*)y[b].qs,
                                _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
        } else {
            _mm256_storeu_si256((__m256i*)y[b].qs, _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xd8));
            _mm256_storeu_si256((__m256i*)(y[b].qs + 16), _mm256_permute4x64_epi64(_mm256_packs_epi32(q[2], q[3]), 0xd8));
        }
        const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        y[b].d = d;
        y[b].sum = _mm_cvtsi128_si32(s4);
    }
}

void quantize_q16a(const float* x, block_q16a* y, int64_t k) { quantize_activations<32767>(x, y, k); }
void quantize_q8a(const float* x, block_q8a* y, int64_t k) { quantize_activations<127>(x, y, k); }

// --------------------------------------------------- attention helpers --

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(alpha), _mm_set_ss(x[i]), _mm_set_ss(y[i])));
}

void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) {
    const __m256 va = _mm256_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(x + i)));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, xv, _mm256_loadu_ps(y + i)));
    }
    for (; i < n; i++)
        y[i] = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(alpha), _mm_set_ss(_cvtsh_ss(x[i])), _mm_set_ss(y[i])));
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i*)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        alignas(32) float tmp[8] = {};
        alignas(16) uint16_t out[8];
        std::memcpy(tmp, x + i, (n - i) * 4);
        _mm_store_si128((__m128i*)out, _mm256_cvtps_ph(_mm256_load_ps(tmp), _MM_FROUND_TO_NEAREST_INT));
        std::memcpy(y + i, out, (n - i) * 2);
    }
}

// A query's scores against one block (kBlockKeys = 16 keys, dimension-major):
// keys 0-7 and 8-15 in two registers, each dimension two loads and two
// multiply-adds with the query's value broadcast; per half four accumulators
// (d mod 4), the same sums as avx512's lanes.
template <typename Load>
inline void scores16(const float* q, int64_t hd, float* out, Load load) {
    static_assert(kBlockKeys == 16, "two registers per key dimension");
    __m256 lo[4], hi[4];
    for (int c = 0; c < 4; c++) lo[c] = hi[c] = _mm256_setzero_ps();
    auto dimension = [&](int64_t d, int c) {
        const __m256 qd = _mm256_set1_ps(q[d]);
        lo[c] = _mm256_fmadd_ps(load(d * 16), qd, lo[c]);
        hi[c] = _mm256_fmadd_ps(load(d * 16 + 8), qd, hi[c]);
    };
    // constant indices keep the accumulators in registers
    int64_t d = 0;
    for (; d + 4 <= hd; d += 4)
        for (int c = 0; c < 4; c++) dimension(d + c, c);
    for (int c = 0; c < 4; c++)
        if (d + c < hd) dimension(d + c, c);
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(lo[0], lo[1]), _mm256_add_ps(lo[2], lo[3])));
    _mm256_storeu_ps(out + 8, _mm256_add_ps(_mm256_add_ps(hi[0], hi[1]), _mm256_add_ps(hi[2], hi[3])));
}

void scores_f32(const float* q, const float* kt, int64_t hd, float* out) {
    scores16(q, hd, out, [kt](int64_t i) { return _mm256_loadu_ps(kt + i); });
}

void scores_f16(const float* q, const uint16_t* kt, int64_t hd, float* out) {
    scores16(q, hd, out, [kt](int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(kt + i))); });
}

// A group of queries, one after the other (the set has no shared-load form).
void scores_group_f32(const float* const* q, int nq, const float* kt, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) scores_f32(q[m], kt, hd, out[m]);
}

void scores_group_f16(const float* const* q, int nq, const uint16_t* kt, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) scores_f16(q[m], kt, hd, out[m]);
}

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(x + i))));
    for (; i < n; i++) y[i] = _cvtsh_ss(x[i]);
}

// e^x for x <= 0 (Cephes' expf polynomial, about 1 ulp; 0 below -87.3).
inline __m256 exp_neg(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f);
    const __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    x = _mm256_max_ps(x, lo);
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^n through the exponent bits (n >= -126 after the clamp)
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

void scaled_softmax(float* x, int64_t n, float scale) {
    float mx = -__builtin_inff();
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    const __m256 vmax = _mm256_set1_ps(mx);
    __m256 sum = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_neg(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float tail = 0.0f;
    if (i < n) {
        alignas(32) float tmp[8];
        for (int j = 0; j < 8; j++) tmp[j] = i + j < n ? x[i + j] : mx;
        _mm256_store_ps(tmp, exp_neg(_mm256_sub_ps(_mm256_load_ps(tmp), vmax)));
        for (int64_t j = 0; i + j < n; j++) x[i + j] = tmp[j], tail += tmp[j];
    }
    const float inv = 1.0f / (hsum8(sum) + tail);
    for (i = 0; i < n; i++) x[i] *= inv;
}

// silu(g) * u = g * sigmoid(g) * u, sigmoid from e = e^-|g| (never
// overflows): 1 / (1 + e) for g >= 0, e / (1 + e) below.
inline __m256 silu_mul8(__m256 g, __m256 u) {
    const __m256 abs_g = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), g);
    const __m256 e = exp_neg(_mm256_sub_ps(_mm256_setzero_ps(), abs_g));
    const __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    const __m256 negative = _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ);
    const __m256 sigmoid = _mm256_blendv_ps(r, _mm256_mul_ps(e, r), negative);
    return _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), u);
}

void silu_mul(float* gate, const float* up, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(gate + i, silu_mul8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        alignas(32) float g[8] = {}, u[8] = {};
        std::memcpy(g, gate + i, (n - i) * 4);
        std::memcpy(u, up + i, (n - i) * 4);
        _mm256_store_ps(g, silu_mul8(_mm256_load_ps(g), _mm256_load_ps(u)));
        std::memcpy(gate + i, g, (n - i) * 4);
    }
}

// out += sum_j w[j] * v[j], the row of 8 * R floats held in R registers
// across the block: the same fused multiply-adds as axpy, in the same order.
template <int R, typename Load>
void accumulate_rows(const float* w, int64_t n, int64_t hd, float* out, Load load) {
    __m256 acc[R];
    for (int r = 0; r < R; r++) acc[r] = _mm256_loadu_ps(out + 8 * r);
    for (int64_t j = 0; j < n; j++) {
        const __m256 wj = _mm256_set1_ps(w[j]);
        for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(wj, load(j, 8 * r), acc[r]);
    }
    for (int r = 0; r < R; r++) _mm256_storeu_ps(out + 8 * r, acc[r]);
}

void accumulate_f32(const float* w, const float* v, int64_t n, int64_t hd, float* out) {
    auto load = [v, hd](int64_t j, int64_t i) { return _mm256_loadu_ps(v + j * hd + i); };
    if (hd == 64) return accumulate_rows<8>(w, n, hd, out, load);
    for (int64_t j = 0; j < n; j++) axpy_f32(w[j], v + j * hd, out, hd);
}

void accumulate_f16(const float* w, const uint16_t* v, int64_t n, int64_t hd, float* out) {
    auto load = [v, hd](int64_t j, int64_t i) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(v + j * hd + i))); };
    if (hd == 64) return accumulate_rows<8>(w, n, hd, out, load);
    for (int64_t j = 0; j < n; j++) axpy_f16(w[j], v + j * hd, out, hd);
}

// A group of weight rows, one after the other (no shared-load form here).
void accumulate_group_f32(const float* const* w, int nq, const float* v, int64_t n, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) accumulate_f32(w[m], v, n, hd, out[m]);
}

void accumulate_group_f16(const float* const* w, int nq, const uint16_t* v, int64_t n, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) accumulate_f16(w[m], v, n, hd, out[m]);
}

// The q8_0 cache's values: each load dequantizes 8 elements (sign-extended,
// to float, times their scale: exact), so accumulate_group_q8 does the f32
// form's operations on the dequantized values. The block's f16 scales are
// converted once, up front (head_dim at most kMaxQ8Groups * 32: KVCache and
// the test hooks refuse larger heads).
struct ValuesQ8 {
    const int8_t* x;
    int64_t hd;
    alignas(32) float scale[kBlockKeys * kMaxQ8Groups];
    ValuesQ8(const void* block, int64_t hd) : x((const int8_t*)block), hd(hd) {
        const uint16_t* s = kv_q8_scales(block, hd);
        for (int64_t i = 0; i < kBlockKeys * (hd / kKVQuantGroup); i += 8)
            _mm256_store_ps(scale + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(s + i))));
    }
    // elements i .. i + 7 of value j (i a multiple of 8)
    __m256 value(int64_t j, int64_t i) const {
        const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(x + j * hd + i))));
        return _mm256_mul_ps(q, _mm256_set1_ps(scale[j * (hd / kKVQuantGroup) + i / kKVQuantGroup]));
    }
};

// The q8_0 cache's quantization (kernels.h): scalar.cpp's steps, 8 values
// per instruction. A group with a NaN or inf (a broken model) goes to the
// scalar reference.
void quantize_kv_q8_0(const float* x, int64_t n, int8_t* q, float* d) {
    const __m256 sign_mask = _mm256_set1_ps(-0.0f), largest = _mm256_set1_ps(FLT_MAX);
    const __m256 half = _mm256_set1_ps(0.5f), minus_half = _mm256_set1_ps(-0.5f);
    const __m256i top = _mm256_set1_epi32(127), bottom = _mm256_set1_epi32(-127);
    for (int64_t g = 0; g < n; g += kKVQuantGroup) {
        __m256 v[4], a[4];
        __m256 broken = _mm256_setzero_ps();  // !(|x| <= FLT_MAX): NaN or inf
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(x + g + 8 * i);
            a[i] = _mm256_andnot_ps(sign_mask, v[i]);
            broken = _mm256_or_ps(broken, _mm256_cmp_ps(a[i], largest, _CMP_NLE_UQ));
        }
        if (_mm256_movemask_ps(broken) != 0) {
            scalar_kernels().quantize_kv_q8_0(x + g, kKVQuantGroup, q + g, d + g / kKVQuantGroup);
            continue;
        }
        const __m256 m = _mm256_max_ps(_mm256_max_ps(a[0], a[1]), _mm256_max_ps(a[2], a[3]));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        const float dg = _mm_cvtss_f32(m4) / 127.0f;
        float id = dg != 0.0f ? 1.0f / dg : 0.0f;
        if (!(id <= FLT_MAX)) id = 0.0f;
        d[g / kKVQuantGroup] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(dg), _MM_FROUND_TO_NEAREST_INT)));
        const __m256 vid = _mm256_set1_ps(id);
        __m256i t[4];
        for (int i = 0; i < 4; i++) {
            // truncate, then step away from zero when half or more was cut
            // off (a true comparison is -1: subtracting it adds one)
            const __m256 p = _mm256_mul_ps(v[i], vid);
            const __m256 cut = _mm256_sub_ps(p, _mm256_round_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
            t[i] = _mm256_cvttps_epi32(p);
            t[i] = _mm256_sub_epi32(t[i], _mm256_castps_si256(_mm256_cmp_ps(cut, half, _CMP_GE_OQ)));
            t[i] = _mm256_add_epi32(t[i], _mm256_castps_si256(_mm256_cmp_ps(cut, minus_half, _CMP_LE_OQ)));
            t[i] = _mm256_max_epi32(_mm256_min_epi32(t[i], top), bottom);
        }
        // the packs interleave 128-bit lanes, a permute restores the order
        const __m256i b8 = _mm256_packs_epi16(_mm256_packs_epi32(t[0], t[1]), _mm256_packs_epi32(t[2], t[3]));
        _mm256_storeu_si256((__m256i*)(q + g), _mm256_permutevar8x32_epi32(b8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

void dequantize_values_q8(const void* block, int64_t n, int64_t hd, float* out) {
    const ValuesQ8 b(block, hd);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < hd; i += 8) _mm256_storeu_ps(out + j * hd + i, b.value(j, i));
}

// A quantized query against a block of q8_0 keys, keys 0-7 and 8-15 in two
// registers: per 32 dimensions, 8 loads of a dword (4 dimensions) of 8 keys
// for each half; maddubs on |key| and the query's bytes with the key's
// sign (pairs of products at most 2 * 127 * 127: no saturation), then
// pairs to dwords. Then the float step, as the scalar set's.
void scores_group_q8(const QueryQ8* q, int nq, const void* kt, int64_t hd, float* const* out) {
    const int8_t* x = (const int8_t*)kt;
    const uint16_t* scale = kv_q8_scales(kt, hd);
    const __m256i ones = _mm256_set1_epi16(1);
    for (int m = 0; m < nq; m++) {
        __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int64_t c = 0; c < hd / kKVQuantGroup; c++) {
            __m256i dot[2] = {_mm256_setzero_si256(), _mm256_setzero_si256()};
            for (int g = 0; g < kKVQuantGroup / 4; g++) {
                int32_t qd;
                std::memcpy(&qd, q[m].q + c * kKVQuantGroup + 4 * g, 4);
                const __m256i qv = _mm256_set1_epi32(qd);
                for (int h = 0; h < 2; h++) {
                    const __m256i k = _mm256_loadu_si256((const __m256i*)(x + (c * kKVQuantGroup / 4 + g) * 64 + 32 * h));
                    const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(k), _mm256_sign_epi8(qv, k));
                    dot[h] = _mm256_add_epi32(dot[h], _mm256_madd_epi16(pairs, ones));
                }
            }
            const __m256 dq = _mm256_set1_ps(q[m].d[c]);
            for (int h = 0; h < 2; h++) {
                const __m256 dk = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)(scale + c * kBlockKeys + 8 * h)));
                acc[h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot[h]), _mm256_mul_ps(dk, dq), acc[h]);
            }
        }
        _mm256_storeu_ps(out[m], acc[0]);
        _mm256_storeu_ps(out[m] + 8, acc[1]);
    }
}

void accumulate_group_q8(const float* const* w, int nq, const void* v, int64_t n, int64_t hd, float* const* out) {
    const ValuesQ8 b(v, hd);
    for (int m = 0; m < nq; m++) {
        if (hd == 64) {
            accumulate_rows<8>(w[m], n, hd, out[m], [&b](int64_t j, int64_t i) { return b.value(j, i); });
            continue;
        }
        for (int64_t j = 0; j < n; j++) {  // axpy_f32's multiply-adds (hd is a multiple of 32: no tail)
            const __m256 wj = _mm256_set1_ps(w[m][j]);
            for (int64_t i = 0; i < hd; i += 8)
                _mm256_storeu_ps(out[m] + i, _mm256_fmadd_ps(wj, b.value(j, i), _mm256_loadu_ps(out[m] + i)));
        }
    }
}

// sampler_exp_one on 8 lanes: the same operations, unfused.
void exp_shifted(const float* x, int64_t n, float shift, float* y) {
    using namespace sampler_exp;
    const __m256 s = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 t = _mm256_sub_ps(_mm256_loadu_ps(x + i), s);
        const __m256 keep = _mm256_cmp_ps(t, _mm256_set1_ps(kLowest), _CMP_GE_OQ);
        const __m256 nf = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(t, _mm256_set1_ps(kLog2e)), _mm256_set1_ps(kRound)),
                                        _mm256_set1_ps(kRound));
        const __m256 r = _mm256_sub_ps(_mm256_sub_ps(t, _mm256_mul_ps(nf, _mm256_set1_ps(kLn2Hi))),
                                       _mm256_mul_ps(nf, _mm256_set1_ps(kLn2Lo)));
        const __m256 z = _mm256_mul_ps(r, r);
        __m256 p = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(kP0), r), _mm256_set1_ps(kP1));
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kP2));
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kP3));
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kP4));
        p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(kP5));
        const __m256 v = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(p, z), r), _mm256_set1_ps(1.0f));
        const __m256i scaled = _mm256_add_epi32(_mm256_castps_si256(v), _mm256_slli_epi32(_mm256_cvtps_epi32(nf), 23));
        _mm256_storeu_ps(y + i, _mm256_and_ps(_mm256_castsi256_ps(scaled), keep));
    }
    for (; i < n; i++) y[i] = sampler_exp_one(x[i], shift);
}

// sampler_exp64_one on 4 lanes: the same operations, unfused. (n, an
// integer below 2^51 in magnitude, is read from the low bits of
// t * log2e + kRound: AVX2 has no double-to-int64 conversion.)
void exp_shifted_f64(const float* x, int64_t n, float shift, double* y) {
    using namespace sampler_exp64;
    const __m256d s = _mm256_set1_pd((double)shift), round = _mm256_set1_pd(kRound);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d t = _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), s);
        const __m256d keep = _mm256_cmp_pd(t, _mm256_set1_pd(kLowest), _CMP_GE_OQ);
        const __m256d shifted = _mm256_add_pd(_mm256_mul_pd(t, _mm256_set1_pd(kLog2e)), round);
        const __m256d nf = _mm256_sub_pd(shifted, round);
        const __m256i ni = _mm256_sub_epi64(_mm256_castpd_si256(shifted), _mm256_castpd_si256(round));
        const __m256d r = _mm256_sub_pd(_mm256_sub_pd(t, _mm256_mul_pd(nf, _mm256_set1_pd(kLn2Hi))),
                                        _mm256_mul_pd(nf, _mm256_set1_pd(kLn2Lo)));
        __m256d p = _mm256_set1_pd(kC[0]);
        for (int k = 1; k < 12; k++) p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(kC[k]));
        p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(1.0));
        const __m256d v = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(1.0));
        const __m256i scaled = _mm256_add_epi64(_mm256_castpd_si256(v), _mm256_slli_epi64(ni, 52));
        _mm256_storeu_pd(y + i, _mm256_and_pd(_mm256_castsi256_pd(scaled), keep));
    }
    for (; i < n; i++) y[i] = sampler_exp64_one(x[i], shift);
}

}  // namespace

const KernelTable& avx2_kernels() {
    static const KernelTable table = {
        "avx2", matmul, quantize_q16a, quantize_q8a, avx2_q8a_packed_row_bytes, avx2_pack_q8a, avx2_pack_q8a_weights,
        axpy_f32, axpy_f16, f32_to_f16_row,
        scores_f32, scores_f16, scores_group_f32, scores_group_f16, accumulate_f32, accumulate_f16,
        accumulate_group_f32, accumulate_group_f16, f16_to_f32_row, dequantize_values_q8, scores_group_q8, accumulate_group_q8,
        quantize_kv_q8_0, scaled_softmax, silu_mul, exp_shifted, exp_shifted_f64,
    };
    return table;
}

}  // namespace hearth
