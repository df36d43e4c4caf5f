// The AVX-512 kernels (F, BW, VL, DQ and VNNI; chosen at run time).
//
// Everything here has internal linkage (anonymous namespace) except
// avx512_kernels(), and no STL header is included: an inline function compiled
// with these flags must never be picked by the linker for the portable code.
//
// Quantized matmuls work on pairs of blocks (64 weights): int32 lanes 0-7
// hold block 2p, lanes 8-15 block 2p+1. The activations are int16 (q16a), so
// the weights are widened to int16 too, as two zmm: "lo" = elements 0-15 of
// block 2p then of 2p+1, "hi" = elements 16-31 of each. Two vpdpwssd
// (s16 x s16 pairs into s32) then give each lane 4 products of its block:
//   q8_0: w . x                  (sign-extended bytes)
//   q4_0: nibbles . x - 8 * x    (the nibbles are q + 8; the -8 x correction,
//                                lane by lane, is the accumulator the dot
//                                products start from)
//   q4_1: nibbles . x, then + m * d_x * sum(x) in float (16 blocks per FMA).
// Each lane's int32 is then an exact partial sum of w * x (no large offsets
// left to cancel in float). The activations of a chunk of tokens are first
// repacked (XPair: the lo and hi halves, the per-lane scale, the per-lane
// correction) so that a tile loads them with plain aligned loads.
//
// Determinism: every matmul output (row r, token t) is computed by the same
// instruction sequence whatever tile it falls in: tile<R, T> instantiations
// differ only in how many (row, token) pairs run side by side. Per pair: one
// 16-lane accumulator, block pairs in order (an odd last block as a pair with
// a zero second half), hsum16() in a fixed order. The file is compiled with
// -ffp-contract=off (GCC fuses even intrinsic mul + add otherwise): an FMA
// happens only where an fmadd intrinsic asks for it.
#include <immintrin.h>

#include <cfloat>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "base/fp16.h"
#include "kernels/float_tiling.h"
#include "kernels/group_tiling.h"
#include "gguf/k_quants.h"
#include "kernels/kernels.h"
#include "kernels/sampler_exp.h"

namespace hearth {
namespace {

// ---------------------------------------------------------------- helpers --

inline float hsum16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 16 halves [a x 8, b x 8] -> f32
inline __m512 pair_f16(uint16_t a, uint16_t b) {
    const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)a)),
                                              _mm_set1_epi16((short)b), 1);
    return _mm512_cvtph_ps(h);
}

// 16 bytes of block a and 16 of block b in one ymm (zeros when b is null).
inline __m256i two_halves(const void* a, const void* b) {
    const __m128i lo = _mm_loadu_si128((const __m128i*)a);
    const __m128i hi = b ? _mm_loadu_si128((const __m128i*)b) : _mm_setzero_si128();
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

// Weights of a block pair as int16, in the lo / hi layout of the header.
struct WPair {
    __m512i lo, hi;
};

// q4 nibbles: byte j of a block holds element j (low nibble) and j + 16 (high).
inline WPair widen_nibbles(const uint8_t* a, const uint8_t* b) {
    const __m256i q = two_halves(a, b);
    const __m256i m = _mm256_set1_epi8(0x0f);
    return WPair{_mm512_cvtepu8_epi16(_mm256_and_si256(q, m)),
                 _mm512_cvtepu8_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m))};
}

// q8_0 bytes: elements 0-15 then 16-31 of each block.
inline WPair widen_bytes(const int8_t* a, const int8_t* b) {
    return WPair{_mm512_cvtepi8_epi16(two_halves(a, b)), _mm512_cvtepi8_epi16(two_halves(a + 16, b ? b + 16 : nullptr))};
}

// ----------------------------------------------------- repacked activations --

struct alignas(64) XPair {
    int16_t lo[32];  // elements 0-15 of block 2p, then of block 2p+1 (zeros past the end)
    int16_t hi[32];  // elements 16-31, the same way
    float d[16];     // d_x per lane: [d0 x 8, d1 x 8]
    int32_t c[16];   // q4_0: -8 * (the lane's 4 activations); 0 otherwise
};
static_assert(sizeof(XPair) == 256, "XPair layout");

enum class Corr { None, Q4 };

// Floats of d_x * sum(x) per block, after a token's pairs (q4_1 only), padded
// with zeros to a multiple of 16 blocks.
inline int64_t n_sums(int64_t nb) { return (nb + 15) / 16 * 16; }

template <Corr C, bool kSums>
void repack_token(const block_q16a* x, int64_t nb, XPair* out) {
    const int64_t np = (nb + 1) / 2;
    if constexpr (kSums) {
        float* s = (float*)(out + np);
        for (int64_t b = 0; b < n_sums(nb); b++) s[b] = b < nb ? x[b].d * (float)x[b].sum : 0.0f;
    }
    for (int64_t p = 0; p < np; p++) {
        const block_q16a* b0 = x + 2 * p;
        const bool two = 2 * p + 1 < nb;
        const block_q16a* b1 = two ? b0 + 1 : b0;
        const __m256i zero = _mm256_setzero_si256();
        const __m512i lo = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)b0->qs)),
                                              two ? _mm256_loadu_si256((const __m256i*)b1->qs) : zero, 1);
        const __m512i hi = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(b0->qs + 16))),
                                              two ? _mm256_loadu_si256((const __m256i*)(b1->qs + 16)) : zero, 1);
        _mm512_store_si512((__m512i*)out[p].lo, lo);
        _mm512_store_si512((__m512i*)out[p].hi, hi);
        const float d1 = two ? b1->d : 0.0f;
        _mm512_store_ps(out[p].d, _mm512_insertf32x8(_mm512_set1_ps(b0->d), _mm256_set1_ps(d1), 1));
        __m512i c = _mm512_setzero_si512();
        if constexpr (C == Corr::Q4) {
            // each lane's 4 activations summed (dot products with all-ones), times -8
            const __m512i minus8 = _mm512_set1_epi16(-8);
            c = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(c, minus8, lo), minus8, hi);
        }
        _mm512_store_si512((__m512i*)out[p].c, c);
    }
}

// Per-thread scratch for the repacked activations (group_tiling.h's).
thread_local Scratch scratch;

// ------------------------------------------------------ quantized weights --

// The shared step: the block pair's integer sums (from the correction, when
// the type has one), scaled by d_w * d_x lane by lane.
template <bool kCorr>
inline void step_q16(const WPair& w, __m512 wd, const XPair* x, __m512& acc) {
    const __m512i start = kCorr ? _mm512_load_si512((const __m512i*)x->c) : _mm512_setzero_si512();
    const __m512i p = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(start, w.lo, _mm512_load_si512((const __m512i*)x->lo)),
                                          w.hi, _mm512_load_si512((const __m512i*)x->hi));
    acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(wd, _mm512_load_ps(x->d)), acc);
}

struct Q8_0 {
    using Block = block_q8_0;
    static constexpr Corr C = Corr::None;
    static constexpr bool kMTerm = false;
    struct W { WPair q; __m512 d; };
    template <bool Two>
    static W load_w(const Block* b) {
        return W{widen_bytes(b[0].qs, Two ? b[1].qs : nullptr), pair_f16(b[0].d, Two ? b[1].d : 0)};
    }
    static void step(const W& w, const XPair* x, __m512& acc) { step_q16<false>(w.q, w.d, x, acc); }
};

struct Q4_0 {
    using Block = block_q4_0;
    static constexpr Corr C = Corr::Q4;
    static constexpr bool kMTerm = false;
    struct W { WPair q; __m512 d; };
    template <bool Two>
    static W load_w(const Block* b) {
        return W{widen_nibbles(b[0].qs, Two ? b[1].qs : nullptr), pair_f16(b[0].d, Two ? b[1].d : 0)};
    }
    static void step(const W& w, const XPair* x, __m512& acc) { step_q16<true>(w.q, w.d, x, acc); }
};

// q4_1: value q * d + m. The integer part as q4_0 without the offset; the
// m * d_x * sum(x) terms are added after all pairs, 16 blocks per FMA (the
// m of 16 blocks gathered from the row, the sums from the repacked token).
struct Q4_1 {
    using Block = block_q4_1;
    static constexpr Corr C = Corr::None;
    static constexpr bool kMTerm = true;
    struct W { WPair q; __m512 d; };
    template <bool Two>
    static W load_w(const Block* b) {
        return W{widen_nibbles(b[0].qs, Two ? b[1].qs : nullptr), pair_f16(b[0].d, Two ? b[1].d : 0)};
    }
    static void step(const W& w, const XPair* x, __m512& acc) { step_q16<false>(w.q, w.d, x, acc); }
    // m of blocks [b, b + 16) of a row as f32 (zeros past nb)
    static __m512 load_m16(const Block* row, int64_t b, int64_t nb) {
        const int64_t n = nb - b < 16 ? nb - b : 16;
        const __mmask16 mask = (__mmask16)((1u << n) - 1);
        const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                               _mm512_set1_epi32((int)sizeof(Block)));
        const __m512i g = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), mask, idx, (const char*)(row + b) + 2, 1);
        return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
    }
};

template <class Q>
struct QuantOps {
    // rows [r, r+R) x tokens [t, t+T); xs: the chunk's repacked tokens, np pairs each
    template <int R, int T>
    static void tile(const MatmulArgs& a, int64_t r, int64_t t, const char* xs, size_t tok_bytes, int64_t t_base) {
        const int64_t nb = a.k / QK, np = nb / 2;
        const typename Q::Block* wr[R];
        const XPair* xr[T];
        for (int i = 0; i < R; i++) wr[i] = (const typename Q::Block*)((const char*)a.w + (r + i) * a.w_row_bytes);
        for (int j = 0; j < T; j++) xr[j] = (const XPair*)(xs + (t + j - t_base) * tok_bytes);
        __m512 acc[R][T];
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
        for (int64_t p = 0; p < np; p++) {
            typename Q::W w[R];
            if (T == 1)  // decode streams the weights once: fetch the next tile's rows ahead
                for (int i = 0; i < R; i++) _mm_prefetch((const char*)(wr[i] + 2 * p) + R * a.w_row_bytes, _MM_HINT_T0);
            for (int i = 0; i < R; i++) w[i] = Q::template load_w<true>(wr[i] + 2 * p);
            for (int j = 0; j < T; j++)
                for (int i = 0; i < R; i++) Q::step(w[i], xr[j] + p, acc[i][j]);
        }
        if (nb & 1) {
            typename Q::W w[R];
            for (int i = 0; i < R; i++) w[i] = Q::template load_w<false>(wr[i] + 2 * np);
            for (int j = 0; j < T; j++)
                for (int i = 0; i < R; i++) Q::step(w[i], xr[j] + np, acc[i][j]);
        }
        if constexpr (Q::kMTerm) {
            const int64_t npp = (nb + 1) / 2;
            for (int64_t b = 0; b < nb; b += 16) {
                __m512 m[R];
                for (int i = 0; i < R; i++) m[i] = Q::load_m16(wr[i], b, nb);
                for (int j = 0; j < T; j++) {
                    const __m512 sv = _mm512_load_ps((const float*)(xr[j] + npp) + b);
                    for (int i = 0; i < R; i++) acc[i][j] = _mm512_fmadd_ps(m[i], sv, acc[i][j]);
                }
            }
        }
        for (int j = 0; j < T; j++)
            for (int i = 0; i < R; i++) a.y[(t + j) * a.y_stride + r + i] = hsum16(acc[i][j]);
    }
};

// Prefill: R x T tiles (R x 1, 1 x T, 1 x 1 at the edges); decode: RD x 1.
// Tokens go in chunks whose repacked activations fit in L2; within a chunk the
// row tile's weights stay in L1 while the chunk's tokens stream by.
template <class Q, int R, int T, int RD>
void matmul_quant(const MatmulArgs& a) {
    using Ops = QuantOps<Q>;
    const int64_t nb = a.k / QK, npp = (nb + 1) / 2;
    const int64_t r0 = a.r0, r1 = a.r1, nt = a.n_tokens;
    if (r0 >= r1 || nt <= 0) return;
    if (nb == 0) {  // k = 0: empty sums
        for (int64_t t = 0; t < nt; t++)
            for (int64_t r = r0; r < r1; r++) a.y[t * a.y_stride + r] = 0.0f;
        return;
    }
    const size_t tok_bytes = (size_t)npp * sizeof(XPair) + (Q::kMTerm ? (size_t)n_sums(nb) * sizeof(float) : 0);
    int64_t chunk = (int64_t)((768 * 1024) / tok_bytes);
    chunk = chunk < T ? T : chunk / T * T;
    if (chunk > nt) chunk = nt;
    char* xs = (char*)scratch.get(tok_bytes * (size_t)chunk);
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        const int64_t t1 = t0 + chunk < nt ? t0 + chunk : nt;
        for (int64_t t = t0; t < t1; t++)
            repack_token<Q::C, Q::kMTerm>((const block_q16a*)((const char*)a.x + t * a.x_row_bytes), nb,
                               (XPair*)(xs + (t - t0) * tok_bytes));
        if (t1 - t0 == 1) {
            int64_t r = r0;
            for (; r + RD <= r1; r += RD) Ops::template tile<RD, 1>(a, r, t0, xs, tok_bytes, t0);
            for (; r < r1; r++) Ops::template tile<1, 1>(a, r, t0, xs, tok_bytes, t0);
            continue;
        }
        int64_t r = r0;
        for (; r + R <= r1; r += R) {
            int64_t t = t0;
            for (; t + T <= t1; t += T) Ops::template tile<R, T>(a, r, t, xs, tok_bytes, t0);
            for (; t < t1; t++) Ops::template tile<R, 1>(a, r, t, xs, tok_bytes, t0);
        }
        for (; r < r1; r++) {
            int64_t t = t0;
            for (; t + T <= t1; t += T) Ops::template tile<1, T>(a, r, t, xs, tok_bytes, t0);
            for (; t < t1; t++) Ops::template tile<1, 1>(a, r, t, xs, tok_bytes, t0);
        }
    }
}

// ---------------------------------------------------------- float weights --
// 16 weights at a time as f32; the tail (k % 16) by masked loads (zeros).

struct F32W {
    using E = float;
    static __m512 load(const float* p) { return _mm512_loadu_ps(p); }
    static __m512 load_m(const float* p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
};
struct F16W {
    using E = uint16_t;
    static __m512 load(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)p)); }
    static __m512 load_m(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
};
struct BF16W {
    using E = uint16_t;
    static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
    static __m512 load(const uint16_t* p) { return widen(_mm256_loadu_si256((const __m256i*)p)); }
    static __m512 load_m(const uint16_t* p, __mmask16 m) { return widen(_mm256_maskz_loadu_epi16(m, p)); }
};

template <class F>
struct FloatOps {
    using E = typename F::E;
    template <int R, int T>
    static void tile(const MatmulArgs& a, int64_t r, int64_t t) {
        const int64_t k = a.k;
        const E* wr[R];
        const float* xr[T];
        for (int i = 0; i < R; i++) wr[i] = (const E*)((const char*)a.w + (r + i) * a.w_row_bytes);
        for (int j = 0; j < T; j++) xr[j] = (const float*)((const char*)a.x + (t + j) * a.x_row_bytes);
        __m512 acc[R][T];
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
        int64_t kk = 0;
        for (; kk + 16 <= k; kk += 16) {
            __m512 w[R];
            for (int i = 0; i < R; i++) w[i] = F::load(wr[i] + kk);
            for (int j = 0; j < T; j++) {
                const __m512 x = _mm512_loadu_ps(xr[j] + kk);
                for (int i = 0; i < R; i++) acc[i][j] = _mm512_fmadd_ps(w[i], x, acc[i][j]);
            }
        }
        if (kk < k) {
            const __mmask16 m = (__mmask16)((1u << (k - kk)) - 1);
            __m512 w[R];
            for (int i = 0; i < R; i++) w[i] = F::load_m(wr[i] + kk, m);
            for (int j = 0; j < T; j++) {
                const __m512 x = _mm512_maskz_loadu_ps(m, xr[j] + kk);
                for (int i = 0; i < R; i++) acc[i][j] = _mm512_fmadd_ps(w[i], x, acc[i][j]);
            }
        }
        for (int j = 0; j < T; j++)
            for (int i = 0; i < R; i++) a.y[(t + j) * a.y_stride + r + i] = hsum16(acc[i][j]);
    }
};

void matmul(const MatmulArgs& a) {
    if (is_quantized(a.w_type) && a.x_type == Activations::Q8) return avx512_matmul_q8a(a);
    // the exact path has no SIMD form for the five-bit types and the K-quants
    // yet: the reference's
    if (is_k_quant(a.w_type) || a.w_type == GgmlType::Q5_0 || a.w_type == GgmlType::Q5_1)
        return scalar_kernels().matmul(a);
    switch (a.w_type) {
        case GgmlType::F32: return matmul_float<FloatOps<F32W>, 4, 4, 4>(a);
        case GgmlType::F16: return matmul_float<FloatOps<F16W>, 4, 4, 4>(a);
        case GgmlType::BF16: return matmul_float<FloatOps<BF16W>, 4, 4, 4>(a);
        case GgmlType::Q8_0: return matmul_quant<Q8_0, 4, 3, 4>(a);
        case GgmlType::Q4_0: return matmul_quant<Q4_0, 4, 3, 4>(a);
        case GgmlType::Q4_1: return matmul_quant<Q4_1, 4, 3, 4>(a);
    }
}

// ------------------------------------------------------------- quantize --
// Bit-identical with the scalar reference: the same max, the same scalar
// d = amax / kMax and id = 1 / d, the same product x * id, and round half
// away from zero done exactly (trunc, then +-1 when the dropped fraction is
// >= 0.5).
// q16a (kMax 32767) and q8a (kMax 127): the same rounding, another width.
template <int kMax, typename Block>
void quantize_activations(const float* x, Block* y, int64_t k) {
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    for (int64_t b = 0; b < k / QK; b++) {
        const float* xb = x + b * QK;
        const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
        const float d = amax < kQ16aTiny ? 0.0f : amax / (float)kMax;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        const __m512 vid = _mm512_set1_ps(id);
        __m512i q[2];
        const __m512 v[2] = {v0, v1};
        for (int i = 0; i < 2; i++) {
            const __m512 p = _mm512_mul_ps(v[i], vid);
            const __m512 tr = _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(p, tr));
            const __mmask16 up = _mm512_cmp_ps_mask(frac, half, _CMP_GE_OQ);
            const __m512 step = _mm512_castsi512_ps(
                _mm512_or_si512(_mm512_castps_si512(one), _mm512_and_si512(_mm512_castps_si512(p), sign)));
            q[i] = _mm512_cvttps_epi32(_mm512_mask_add_ps(tr, up, tr, step));
            if constexpr (kMax != 127) _mm256_storeu_si256((__m256i*)(y[b].qs + 16 * i), _mm512_cvtepi32_epi16(q[i]));
        }
        // q8a: the block's 32 bytes in one store, which the packing's 32-byte
        // loads right after can take from the store buffer (a load over two
        // stores waits until they reach the cache)
        if constexpr (kMax == 127)
            _mm256_storeu_si256((__m256i*)y[b].qs, _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtepi32_epi8(q[0])),
                                                                           _mm512_cvtepi32_epi8(q[1]), 1));
        y[b].d = d;
        y[b].sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
    }
}

void quantize_q16a(const float* x, block_q16a* y, int64_t k) { quantize_activations<32767>(x, y, k); }
void quantize_q8a(const float* x, block_q8a* y, int64_t k) { quantize_activations<127>(x, y, k); }

// --------------------------------------------------- attention helpers --

inline __mmask16 tail_mask(int64_t n) { return (__mmask16)((1u << n) - 1); }  // 0 <= n < 16

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
    const __m512 va = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) {
    const __m512 va = _mm512_set1_ps(alpha);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 xv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(x + i)));
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, xv, _mm512_loadu_ps(y + i)));
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 xv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, xv, _mm512_maskz_loadu_ps(m, y + i)));
    }
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256((__m256i*)(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, x + i), _MM_FROUND_TO_NEAREST_INT);
        _mm256_mask_storeu_epi16(y + i, m, h);
    }
}

// N queries' scores against one block (kBlockKeys = 16 keys,
// dimension-major): key j in lane j, so each dimension is one load (and
// conversion), shared by the N queries, and one multiply-add per query with
// its value broadcast; four accumulators per query (d mod 4) keep the
// multiply-adds from waiting on each other. A query's operations are the
// same whatever N, so grouping never changes its scores.
template <int N, typename Load>
inline void scores16xN(const float* const* q, int64_t hd, float* const* out, Load load) {
    static_assert(kBlockKeys == 16, "one register per key dimension");
    __m512 part[N][4];
    for (int m = 0; m < N; m++)
        for (int c = 0; c < 4; c++) part[m][c] = _mm512_setzero_ps();
    auto dimension = [&](int64_t d, int c) {
        const __m512 k = load(d);
        for (int m = 0; m < N; m++) part[m][c] = _mm512_fmadd_ps(k, _mm512_set1_ps(q[m][d]), part[m][c]);
    };
    int64_t d = 0;
    for (; d + 4 <= hd; d += 4)
        for (int c = 0; c < 4; c++) dimension(d + c, c);
    for (int c = 0; c < 4; c++)
        if (d + c < hd) dimension(d + c, c);
    for (int m = 0; m < N; m++)
        _mm512_storeu_ps(out[m], _mm512_add_ps(_mm512_add_ps(part[m][0], part[m][1]), _mm512_add_ps(part[m][2], part[m][3])));
}

template <typename Load>
inline void scores16_group(const float* const* q, int nq, int64_t hd, float* const* out, Load load) {
    static_assert(kGroupQueries == 4, "one case per group size");
    switch (nq) {
        case 1: return scores16xN<1>(q, hd, out, load);
        case 2: return scores16xN<2>(q, hd, out, load);
        case 3: return scores16xN<3>(q, hd, out, load);
        default: return scores16xN<4>(q, hd, out, load);
    }
}

void scores_group_f32(const float* const* q, int nq, const float* kt, int64_t hd, float* const* out) {
    scores16_group(q, nq, hd, out, [kt](int64_t d) { return _mm512_loadu_ps(kt + d * 16); });
}

void scores_group_f16(const float* const* q, int nq, const uint16_t* kt, int64_t hd, float* const* out) {
    scores16_group(q, nq, hd, out, [kt](int64_t d) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(kt + d * 16))); });
}

void scores_f32(const float* q, const float* kt, int64_t hd, float* out) {
    scores_group_f32(&q, 1, kt, hd, &out);
}

void scores_f16(const float* q, const uint16_t* kt, int64_t hd, float* out) {
    scores_group_f16(&q, 1, kt, hd, &out);
}

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(x + i))));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

// e^x for x <= 0 (Cephes' expf polynomial, about 1 ulp; 0 below -87.3).
inline __m512 exp_neg(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.3f);
    const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_max_ps(x, lo);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_maskz_mov_ps(~under, _mm512_scalef_ps(p, n));
}

void scaled_softmax(float* x, int64_t n, float scale) {
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vs);
        _mm512_storeu_ps(x + i, v);
        mx = _mm512_max_ps(mx, v);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
        _mm512_mask_storeu_ps(x + i, m, v);
        mx = _mm512_mask_max_ps(mx, m, mx, v);
    }
    const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = exp_neg(_mm512_sub_ps(_mm512_loadu_ps(x + i), vmax));
        _mm512_storeu_ps(x + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        const __m512 e = _mm512_maskz_mov_ps(m, exp_neg(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vmax)));
        _mm512_mask_storeu_ps(x + i, m, e);
        sum = _mm512_add_ps(sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / hsum16(sum));
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

// silu(g) * u = g * sigmoid(g) * u, sigmoid from e = e^-|g| (never
// overflows): 1 / (1 + e) for g >= 0, e / (1 + e) below.
inline __m512 silu_mul16(__m512 g, __m512 u) {
    const __m512 e = exp_neg(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(g)));
    const __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    const __mmask16 negative = _mm512_cmp_ps_mask(g, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512 sigmoid = _mm512_mask_mul_ps(r, negative, e, r);
    return _mm512_mul_ps(_mm512_mul_ps(g, sigmoid), u);
}

void silu_mul(float* gate, const float* up, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(gate + i, silu_mul16(_mm512_loadu_ps(gate + i), _mm512_loadu_ps(up + i)));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(gate + i, m, silu_mul16(_mm512_maskz_loadu_ps(m, gate + i), _mm512_maskz_loadu_ps(m, up + i)));
    }
}

// out[m] += sum_j w[m][j] * v[j] for N weight rows, each output row of
// 16 * R floats held in registers across the block, in two sets (even and
// odd positions) added at the end: with R = 4 (head_dim 64) one set would
// leave the FMAs waiting on each other. Each value is loaded (and converted)
// once for the N rows; each row's operations are the same whatever N.
template <int R, int N, typename Load>
void accumulate_rows(const float* const* w, int64_t n, int64_t hd, float* const* out, Load load) {
    // (the loops over m and r unrolled before GCC places acc and odd: left
    // to it, it kept them on the stack between the block's loop and its ends)
    __m512 acc[N][R], odd[N][R];
#pragma GCC unroll 8
    for (int m = 0; m < N; m++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) acc[m][r] = _mm512_loadu_ps(out[m] + 16 * r), odd[m][r] = _mm512_setzero_ps();
    int64_t j = 0;
    for (; j + 2 <= n; j += 2)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 even_v = load(j, 16 * r), odd_v = load(j + 1, 16 * r);
#pragma GCC unroll 8
            for (int m = 0; m < N; m++) {
                acc[m][r] = _mm512_fmadd_ps(_mm512_set1_ps(w[m][j]), even_v, acc[m][r]);
                odd[m][r] = _mm512_fmadd_ps(_mm512_set1_ps(w[m][j + 1]), odd_v, odd[m][r]);
            }
        }
    if (j < n)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) {
            const __m512 even_v = load(j, 16 * r);
#pragma GCC unroll 8
            for (int m = 0; m < N; m++) acc[m][r] = _mm512_fmadd_ps(_mm512_set1_ps(w[m][j]), even_v, acc[m][r]);
        }
#pragma GCC unroll 8
    for (int m = 0; m < N; m++)
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) _mm512_storeu_ps(out[m] + 16 * r, _mm512_add_ps(acc[m][r], odd[m][r]));
}

// Groups of rows as the registers allow (2 * R * N accumulators of 32):
// three rows at head_dim 64, one at 128; other head sizes one row at a time
// through axpy.
template <typename Load, typename Axpy>
void accumulate_group(const float* const* w, int nq, int64_t n, int64_t hd, float* const* out, Load load, Axpy axpy) {
    for (int m = 0; m < nq;) {
        if (hd == 64 && nq - m >= 3) accumulate_rows<4, 3>(w + m, n, hd, out + m, load), m += 3;
        else if (hd == 64 && nq - m == 2) accumulate_rows<4, 2>(w + m, n, hd, out + m, load), m += 2;
        else if (hd == 64) accumulate_rows<4, 1>(w + m, n, hd, out + m, load), m += 1;
        else if (hd == 128) accumulate_rows<8, 1>(w + m, n, hd, out + m, load), m += 1;
        else {
            for (int64_t j = 0; j < n; j++) axpy(w[m][j], j, out[m]);
            m += 1;
        }
    }
}

void accumulate_group_f32(const float* const* w, int nq, const float* v, int64_t n, int64_t hd, float* const* out) {
    accumulate_group(w, nq, n, hd, out, [v, hd](int64_t j, int64_t i) { return _mm512_loadu_ps(v + j * hd + i); },
                     [v, hd](float a, int64_t j, float* y) { axpy_f32(a, v + j * hd, y, hd); });
}

void accumulate_group_f16(const float* const* w, int nq, const uint16_t* v, int64_t n, int64_t hd, float* const* out) {
    accumulate_group(w, nq, n, hd, out,
                     [v, hd](int64_t j, int64_t i) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(v + j * hd + i))); },
                     [v, hd](float a, int64_t j, float* y) { axpy_f16(a, v + j * hd, y, hd); });
}

void accumulate_f32(const float* w, const float* v, int64_t n, int64_t hd, float* out) {
    accumulate_group_f32(&w, 1, v, n, hd, &out);
}

void accumulate_f16(const float* w, const uint16_t* v, int64_t n, int64_t hd, float* out) {
    accumulate_group_f16(&w, 1, v, n, hd, &out);
}

// The q8_0 cache's values: each load dequantizes 16 elements (sign-extended,
// to float, times their scale: exact), so accumulate_group_q8 does the f32
// form's operations on the dequantized values. The block's f16 scales are
// converted once, up front (head_dim at most kMaxQ8Groups * 32: KVCache and
// the test hooks refuse larger heads).
struct ValuesQ8 {
    const int8_t* x;
    int64_t hd;
    alignas(64) float scale[kBlockKeys * kMaxQ8Groups];
    ValuesQ8(const void* block, int64_t hd) : x((const int8_t*)block), hd(hd) {
        const uint16_t* s = kv_q8_scales(block, hd);
        for (int64_t i = 0; i < kBlockKeys * (hd / kKVQuantGroup); i += 16)
            _mm512_store_ps(scale + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(s + i))));
    }
    // elements i .. i + 15 of value j (i a multiple of 16)
    __m512 value(int64_t j, int64_t i) const {
        const __m512 q = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(x + j * hd + i))));
        return _mm512_mul_ps(q, _mm512_set1_ps(scale[j * (hd / kKVQuantGroup) + i / kKVQuantGroup]));
    }
};

// The q8_0 cache's quantization (kernels.h): scalar.cpp's steps, 16 values
// per instruction. A group with a NaN or inf (a broken model) goes to the
// scalar reference.
void quantize_kv_q8_0(const float* x, int64_t n, int8_t* q, float* d) {
    const __m512 largest = _mm512_set1_ps(FLT_MAX), half = _mm512_set1_ps(0.5f), minus_half = _mm512_set1_ps(-0.5f);
    const __m512i one = _mm512_set1_epi32(1), top = _mm512_set1_epi32(127), bottom = _mm512_set1_epi32(-127);
    for (int64_t g = 0; g < n; g += kKVQuantGroup) {
        const __m512 v[2] = {_mm512_loadu_ps(x + g), _mm512_loadu_ps(x + g + 16)};
        const __m512 a0 = _mm512_abs_ps(v[0]), a1 = _mm512_abs_ps(v[1]);
        if ((_mm512_cmp_ps_mask(a0, largest, _CMP_LE_OQ) & _mm512_cmp_ps_mask(a1, largest, _CMP_LE_OQ)) != 0xffff) {
            scalar_kernels().quantize_kv_q8_0(x + g, kKVQuantGroup, q + g, d + g / kKVQuantGroup);
            continue;
        }
        const float dg = _mm512_reduce_max_ps(_mm512_max_ps(a0, a1)) / 127.0f;
        float id = dg != 0.0f ? 1.0f / dg : 0.0f;
        if (!(id <= FLT_MAX)) id = 0.0f;
        d[g / kKVQuantGroup] = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtps_ph(_mm_set_ss(dg), _MM_FROUND_TO_NEAREST_INT)));
        const __m512 vid = _mm512_set1_ps(id);
        for (int i = 0; i < 2; i++) {
            // truncate, then step away from zero when half or more was cut off
            const __m512 p = _mm512_mul_ps(v[i], vid);
            const __m512 cut = _mm512_sub_ps(p, _mm512_roundscale_ps(p, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC));
            __m512i t = _mm512_cvttps_epi32(p);
            t = _mm512_mask_add_epi32(t, _mm512_cmp_ps_mask(cut, half, _CMP_GE_OQ), t, one);
            t = _mm512_mask_sub_epi32(t, _mm512_cmp_ps_mask(cut, minus_half, _CMP_LE_OQ), t, one);
            t = _mm512_max_epi32(_mm512_min_epi32(t, top), bottom);
            _mm_storeu_si128((__m128i*)(q + g + 16 * i), _mm512_cvtepi32_epi8(t));
        }
    }
}

void dequantize_values_q8(const void* block, int64_t n, int64_t hd, float* out) {
    const ValuesQ8 b(block, hd);
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < hd; i += 16) _mm512_storeu_ps(out + j * hd + i, b.value(j, i));
}

// N quantized queries against a block of q8_0 keys, 16 keys in the lanes:
// per 32 dimensions, 8 loads of a dword (4 dimensions) of each key, shared
// by the queries; vpdpbusd takes the query's bytes as unsigned (+128), so
// the keys' own sums, 128 times, come off after. Then the group's float
// step, as the scalar set's.
template <int N>
void scores16_q8xN(const QueryQ8* q, const int8_t* x, const uint16_t* scale, int64_t hd, float* const* out) {
    __m512 acc[N];
    for (int m = 0; m < N; m++) acc[m] = _mm512_setzero_ps();
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t c = 0; c < hd / kKVQuantGroup; c++) {
        __m512i key_sum = _mm512_setzero_si512(), dot[N];
        for (int m = 0; m < N; m++) dot[m] = _mm512_setzero_si512();
        for (int g = 0; g < kKVQuantGroup / 4; g++) {
            const __m512i k = _mm512_loadu_si512(x + (c * kKVQuantGroup / 4 + g) * 64);
            key_sum = _mm512_dpbusd_epi32(key_sum, ones, k);
            for (int m = 0; m < N; m++) {
                uint32_t qd;
                std::memcpy(&qd, q[m].q + c * kKVQuantGroup + 4 * g, 4);
                dot[m] = _mm512_dpbusd_epi32(dot[m], _mm512_set1_epi32((int)(qd ^ 0x80808080u)), k);
            }
        }
        const __m512 dk = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(scale + c * kBlockKeys)));
        const __m512i offset = _mm512_slli_epi32(key_sum, 7);
        for (int m = 0; m < N; m++) {
            const __m512 exact = _mm512_cvtepi32_ps(_mm512_sub_epi32(dot[m], offset));
            acc[m] = _mm512_fmadd_ps(exact, _mm512_mul_ps(dk, _mm512_set1_ps(q[m].d[c])), acc[m]);
        }
    }
    for (int m = 0; m < N; m++) _mm512_storeu_ps(out[m], acc[m]);
}

void scores_group_q8(const QueryQ8* q, int nq, const void* kt, int64_t hd, float* const* out) {
    const int8_t* x = (const int8_t*)kt;
    const uint16_t* scale = kv_q8_scales(kt, hd);
    switch (nq) {
        case 1: return scores16_q8xN<1>(q, x, scale, hd, out);
        case 2: return scores16_q8xN<2>(q, x, scale, hd, out);
        case 3: return scores16_q8xN<3>(q, x, scale, hd, out);
        default: return scores16_q8xN<4>(q, x, scale, hd, out);
    }
}

void accumulate_group_q8(const float* const* w, int nq, const void* v, int64_t n, int64_t hd, float* const* out) {
    const ValuesQ8 b(v, hd);
    // axpy_f32's multiply-adds (hd is a multiple of 32: no tail)
    accumulate_group(w, nq, n, hd, out, [&b](int64_t j, int64_t i) { return b.value(j, i); },
                     [&b, hd](float a, int64_t j, float* y) {
                         const __m512 va = _mm512_set1_ps(a);
                         for (int64_t i = 0; i < hd; i += 16)
                             _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, b.value(j, i), _mm512_loadu_ps(y + i)));
                     });
}

// sampler_exp_one on 16 lanes: the same operations, unfused.
inline __m512 exp_shifted16(__m512 x, __m512 shift) {
    using namespace sampler_exp;
    const __m512 t = _mm512_sub_ps(x, shift);
    const __mmask16 keep = _mm512_cmp_ps_mask(t, _mm512_set1_ps(kLowest), _CMP_GE_OQ);
    const __m512 nf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(t, _mm512_set1_ps(kLog2e)), _mm512_set1_ps(kRound)),
                                    _mm512_set1_ps(kRound));
    const __m512 r = _mm512_sub_ps(_mm512_sub_ps(t, _mm512_mul_ps(nf, _mm512_set1_ps(kLn2Hi))),
                                   _mm512_mul_ps(nf, _mm512_set1_ps(kLn2Lo)));
    const __m512 z = _mm512_mul_ps(r, r);
    __m512 p = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(kP0), r), _mm512_set1_ps(kP1));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kP2));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kP3));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kP4));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(kP5));
    const __m512 v = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(p, z), r), _mm512_set1_ps(1.0f));
    const __m512i scaled = _mm512_add_epi32(_mm512_castps_si512(v), _mm512_slli_epi32(_mm512_cvtps_epi32(nf), 23));
    return _mm512_maskz_mov_ps(keep, _mm512_castsi512_ps(scaled));
}

void exp_shifted(const float* x, int64_t n, float shift, float* y) {
    const __m512 s = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, exp_shifted16(_mm512_loadu_ps(x + i), s));
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(y + i, m, exp_shifted16(_mm512_maskz_loadu_ps(m, x + i), s));
    }
}

// sampler_exp64_one on 8 lanes: the same operations, unfused.
inline __m512d exp_shifted8_f64(__m256 x, __m512d shift) {
    using namespace sampler_exp64;
    const __m512d round = _mm512_set1_pd(kRound);
    const __m512d t = _mm512_sub_pd(_mm512_cvtps_pd(x), shift);
    const __mmask8 keep = _mm512_cmp_pd_mask(t, _mm512_set1_pd(kLowest), _CMP_GE_OQ);
    const __m512d shifted = _mm512_add_pd(_mm512_mul_pd(t, _mm512_set1_pd(kLog2e)), round);
    const __m512d nf = _mm512_sub_pd(shifted, round);
    const __m512i ni = _mm512_sub_epi64(_mm512_castpd_si512(shifted), _mm512_castpd_si512(round));
    const __m512d r = _mm512_sub_pd(_mm512_sub_pd(t, _mm512_mul_pd(nf, _mm512_set1_pd(kLn2Hi))),
                                    _mm512_mul_pd(nf, _mm512_set1_pd(kLn2Lo)));
    __m512d p = _mm512_set1_pd(kC[0]);
    for (int k = 1; k < 12; k++) p = _mm512_add_pd(_mm512_mul_pd(p, r), _mm512_set1_pd(kC[k]));
    p = _mm512_add_pd(_mm512_mul_pd(p, r), _mm512_set1_pd(1.0));
    const __m512d v = _mm512_add_pd(_mm512_mul_pd(p, r), _mm512_set1_pd(1.0));
    const __m512i scaled = _mm512_add_epi64(_mm512_castpd_si512(v), _mm512_slli_epi64(ni, 52));
    return _mm512_maskz_mov_pd(keep, _mm512_castsi512_pd(scaled));
}

void exp_shifted_f64(const float* x, int64_t n, float shift, double* y) {
    const __m512d s = _mm512_set1_pd((double)shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(y + i, exp_shifted8_f64(_mm256_loadu_ps(x + i), s));
    if (i < n) {
        const __mmask8 m = (__mmask8)((1u << (n - i)) - 1);
        _mm512_mask_storeu_pd(y + i, m, exp_shifted8_f64(_mm256_maskz_loadu_ps(m, x + i), s));
    }
}

}  // namespace

const KernelTable& avx512_kernels() {
    static const KernelTable table = {
        "avx512", matmul, quantize_q16a, quantize_q8a, avx512_q8a_packed_row_bytes, avx512_pack_q8a, avx512_pack_q8a_weights,
        axpy_f32, axpy_f16, f32_to_f16_row,
        scores_f32, scores_f16, scores_group_f32, scores_group_f16, accumulate_f32, accumulate_f16,
        accumulate_group_f32, accumulate_group_f16, f16_to_f32_row, dequantize_values_q8, scores_group_q8, accumulate_group_q8,
        quantize_kv_q8_0, scaled_softmax, silu_mul, exp_shifted, exp_shifted_f64,
    };
    return table;
}

}  // namespace hearth
