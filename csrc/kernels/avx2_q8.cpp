// The AVX2 quantized matmuls with 8-bit activations (q8a), the fast path.
// Compiled with -mavx2 -mfma -mf16c like avx2.cpp; only the avx2_*_q8a
// entries have external linkage.
//
// The weight types here: q5_0, q5_1 and the K-quants (q4_0, q4_1 and q8_0
// go to avx2_rows.cpp's row tiles, row_tiles.h). The layout of
// avx512_q8.cpp with groups of 8 blocks, one int32 lane each
// (group_tiling.h: XGroup::q[c] lane l = activations 4c..4c+3 of block l;
// weights repacked at load so that one load gives a dword of 8 blocks).
// Without VNNI the products go through vpmaddubsw (unsigned x signed bytes,
// pairs summed into int16): the nibbles (and q5's fifth bits) are unsigned;
// the vpmaddubsw of a group add up in int16 as far as they cannot overflow,
// then vpmaddwd makes the block's int32; q5_0 starts from -16 * sum(x).
//
// Determinism as in avx512_q8.cpp: integer lanes (exact), then per group one
// cvt, mul and fmadd (and q5_1's m term) into an 8-lane accumulator, hsum8 at
// the end; decode and prefill run the same arithmetic.
//
// The packed activation row: these groups (when some weight reads them),
// then row_tiles.h's raw part for avx2_rows.cpp (pack_q8a below).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"
#include "kernels/row_tiles.h"

namespace hearth {
namespace {

constexpr int G = 8;  // blocks per group

using XG = XGroup<G>;
static_assert(sizeof(XG) == 448, "XGroup layout");

inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// ----------------------------------------------------------- the weights --

// n dwords, one per block (zeros past n; n < 8 only in a row's last group).
inline __m256i load_dwords(const uint8_t* p, int n) {
    if (n == G) return _mm256_loadu_si256((const __m256i*)p);
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_epi32((const int*)p, m);
}

// n fp16 scales, one per block, as f32 (zeros past n).
inline __m256 load_f16(const uint16_t* p, int n) {
    if (n == G) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));
    uint16_t h[G] = {0};
    std::memcpy(h, p, (size_t)n * 2);
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)h));
}

// q4 groups: the low nibbles of dword c are elements 4c..4c+3, the high ones 16+4c..
template <class Block>
inline void prep_nibbles(const PackedRow<Block>& r, int64_t g, int n, __m256i q[8]) {
    const __m256i mask = _mm256_set1_epi8(0x0f);
    for (int c = 0; c < 4; c++) {
        const __m256i P = load_dwords(r.quants(g, G, c, n), n);
        q[c] = _mm256_and_si256(P, mask);
        q[4 + c] = _mm256_and_si256(_mm256_srli_epi16(P, 4), mask);
    }
}

// Nibble types: the 8 vpmaddubsw of a group summed in int16, one vpmaddwd.
template <class W>
inline __m256i nibble_dot(const W& w, const XG& x, __m256i start) {
    __m256i s16 = _mm256_maddubs_epi16(w.q[0], _mm256_load_si256((const __m256i*)x.q[0]));
    for (int c = 1; c < 8; c++) s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w.q[c], _mm256_load_si256((const __m256i*)x.q[c])));
    return _mm256_add_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), start);
}

// The float part of a (row, token) group: d_w * d_x per lane, then, for the
// types with a minimum, m * (d_x * sum(x)).
template <class W>
inline __m256 scale_d(__m256i p, const W& w, const XG& x, __m256 acc) {
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(w.d, _mm256_load_ps(x.d)), acc);
}
template <class W>
inline __m256 scale_dm(__m256i p, const W& w, const XG& x, __m256 acc) {
    return _mm256_fmadd_ps(w.m, _mm256_load_ps(x.s), scale_d(p, w, x, acc));
}

// ------------------------------------------------------------ K-quants --
//
// K-quant rows repacked as in avx512_q8.cpp (k_packing.h); a group of 8
// lanes is one super-block. The integer sums include the scales:
//   q4_K, q5_K run as q4_1 with f32 d * scale and -dmin * min per lane
//     (q5_K's 31s as q5_0's: five_bit_dot);
//   q6_K, q3_K, q2_K: each half's vpmaddubsw (two at a time for q6_K's
//     63s) widened by vpmaddwd with the half's scale as the int16 factor,
//     so the lane's sum comes out scaled and exact; the offsets take back
//     offset * (sc_lo * hs_lo + sc_hi * hs_hi), one vpmaddwd on the int16
//     pairs; q2_K's minimum is the same vpmaddwd with its mins.

inline __m256i shift_bits(__m256i v, int s) { return s >= 0 ? _mm256_slli_epi16(v, s) : _mm256_srli_epi16(v, -s); }

template <class Row>
inline void prep_k_quants(const Row& r, int64_t g, __m256i q[8]) {
    constexpr KLayout L = Row::L;
    if constexpr (L.low == 4) {
        const __m256i mask = _mm256_set1_epi8(0x0f);
        for (int c = 0; c < 4; c++) {
            const __m256i P = load_dwords(r.low(g, G, c, G), G);
            q[c] = _mm256_and_si256(P, mask);
            q[4 + c] = _mm256_and_si256(_mm256_srli_epi16(P, 4), mask);
        }
    } else {
        const __m256i mask = _mm256_set1_epi8(3);
        for (int h = 0; h < 2; h++) {
            const __m256i P = load_dwords(r.low(g, G, h, G), G);
            for (int c = 0; c < 4; c++) q[4 * h + c] = _mm256_and_si256(shift_bits(P, -2 * c), mask);
        }
    }
    if constexpr (L.high == 1) {
        const __m256i H = load_dwords(r.high(g, G, 0, G), G);
        const __m256i bit = _mm256_set1_epi8((char)(1 << L.high_bit));
        for (int c = 0; c < 8; c++) q[c] = _mm256_or_si256(q[c], _mm256_and_si256(shift_bits(H, L.high_bit - c), bit));
    } else if constexpr (L.high == 2) {
        const __m256i bits = _mm256_set1_epi8(0x30);
        for (int h = 0; h < 2; h++) {
            const __m256i H = load_dwords(r.high(g, G, h, G), G);
            for (int c = 0; c < 4; c++) q[4 * h + c] = _mm256_or_si256(q[4 * h + c], _mm256_and_si256(shift_bits(H, 4 - 2 * c), bits));
        }
    }
}

inline float f16_scalar(const uint16_t* p) { return _cvtsh_ss(*p); }

// Five-bit quants (q5_0, q5_1, q5_K): four 31 x 127 pairs per int16 sum
// stay below 2^15, so each half of a lane is widened on its own.
template <class W>
inline __m256i five_bit_dot(const W& w, const XG& x, __m256i start) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p = start;
    for (int h = 0; h < 2; h++) {
        __m256i s16 = _mm256_maddubs_epi16(w.q[4 * h], _mm256_load_si256((const __m256i*)x.q[4 * h]));
        for (int c = 4 * h + 1; c < 4 * h + 4; c++)
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w.q[c], _mm256_load_si256((const __m256i*)x.q[c])));
        p = _mm256_add_epi32(p, _mm256_madd_epi16(s16, ones));
    }
    return p;
}

// q5_0 / q5_1: q4_0 / q4_1 with the fifth bits (bit c of byte i, from
// group_tiling.h's packing) moved to bit 4 of q[c]'s byte i.
template <class Block>
inline void prep_fifth_bits(const PackedRow<Block>& r, int64_t g, int n, __m256i q[8]) {
    const __m256i H = load_dwords(r.quants(g, G, 4, n), n);
    const __m256i bit = _mm256_set1_epi8(0x10);
    for (int c = 0; c < 8; c++) q[c] = _mm256_or_si256(q[c], _mm256_and_si256(shift_bits(H, 4 - c), bit));
}

// q5_0 / q5_1 (q4_0 / q4_1 take avx2_rows.cpp): the nibbles and fifth bits
// are the unsigned quants; q5_0's -16 is taken back from the sums' start,
// q5_1's minimum m is the float m term.
template <class Block>
struct Nibbles {
    using Row = PackedRow<Block>;
    static constexpr bool kMin = has_min<Block>();
    static_assert(has_fifth_bits<Block>(), "q4_0 / q4_1 take avx2_rows.cpp");
    struct alignas(32) WD { __m256i q[8]; __m256 d; };
    struct alignas(32) WDM { __m256i q[8]; __m256 d, m; };
    using W = std::conditional_t<kMin, WDM, WD>;
    static void prep(const Row& r, int64_t g, int n, W& w) {
        prep_nibbles(r, g, n, w.q);
        prep_fifth_bits(r, g, n, w.q);
        w.d = load_f16(r.d(g, G, n), n);
        if constexpr (kMin) w.m = load_f16(r.m(g, G, n), n);
    }
    static __m256i dot(const W& w, const XG& x) {
        __m256i start = _mm256_setzero_si256();
        if constexpr (!kMin) start = _mm256_slli_epi32(_mm256_load_si256((const __m256i*)x.c8), 1);  // -16 * sum(x)
        return five_bit_dot(w, x, start);
    }
    static __m256 scale_add(__m256i p, const W& w, const XG& x, __m256 acc) {
        if constexpr (kMin) return scale_dm(p, w, x, acc);
        else return scale_d(p, w, x, acc);
    }
};

// q4_K, q5_K
template <GgmlType kType>
struct KQuant32 {
    using Row = KPackedRow<kType>;
    struct alignas(32) W { __m256i q[8]; __m256 d, m; };
    static void prep(const Row& r, int64_t g, int /*n: always 8*/, W& w) {
        prep_k_quants(r, g, w.q);
        const __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)r.scales(g, G, G))));
        const __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i*)r.mins(g, G, G))));
        w.d = _mm256_mul_ps(_mm256_set1_ps(f16_scalar(r.d(g, G, G))), sc);
        w.m = _mm256_mul_ps(_mm256_set1_ps(-f16_scalar(r.dmin(g, G, G))), mn);
    }
    static __m256i dot(const W& w, const XG& x) {
        if constexpr (kType == GgmlType::Q4_K) return nibble_dot(w, x, _mm256_setzero_si256());
        else return five_bit_dot(w, x, _mm256_setzero_si256());
    }
    static __m256 scale_add(__m256i p, const W& w, const XG& x, __m256 acc) { return scale_dm(p, w, x, acc); }
};

// q6_K, q3_K, q2_K
template <GgmlType kType>
struct KQuant16 {
    using Row = KPackedRow<kType>;
    static constexpr int kOffsetShift = kType == GgmlType::Q6_K ? 5 : kType == GgmlType::Q3_K ? 2 : -1;
    static constexpr bool kMin = kType == GgmlType::Q2_K;
    // sc_lo / sc_hi: the half's scale in both int16 of each lane; sc: the
    // pair (lo, hi); mn: q2_K's pair of mins
    struct alignas(32) W { __m256i q[8]; __m256i sc_lo, sc_hi, sc, mn; __m256 d, m; };
    static void prep(const Row& r, int64_t g, int /*n: always 8*/, W& w) {
        prep_k_quants(r, g, w.q);
        const __m128i bytes = _mm_loadu_si128((const __m128i*)r.scales(g, G, G));
        if constexpr (kMin) {
            const __m256i pairs = _mm256_cvtepu8_epi16(bytes);
            w.sc = _mm256_and_si256(pairs, _mm256_set1_epi16(0x0f));
            w.mn = _mm256_srli_epi16(pairs, 4);
            w.m = _mm256_set1_ps(-f16_scalar(r.dmin(g, G, G)));
        } else {
            w.sc = _mm256_cvtepi8_epi16(bytes);
        }
        w.sc_lo = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(w.sc, 0xa0), 0xa0);
        w.sc_hi = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(w.sc, 0xf5), 0xf5);
        w.d = _mm256_set1_ps(f16_scalar(r.d(g, G, G)));
    }
    static __m256i dot(const W& w, const XG& x) {
        __m256i p = _mm256_setzero_si256();
        // q6_K's 63 x 127 pairs: two vpmaddubsw per int16 sum; the others four
        constexpr int kStep = kType == GgmlType::Q6_K ? 2 : 4;
        for (int c0 = 0; c0 < 8; c0 += kStep) {
            __m256i s16 = _mm256_maddubs_epi16(w.q[c0], _mm256_load_si256((const __m256i*)x.q[c0]));
            for (int c = c0 + 1; c < c0 + kStep; c++)
                s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(w.q[c], _mm256_load_si256((const __m256i*)x.q[c])));
            p = _mm256_add_epi32(p, _mm256_madd_epi16(s16, c0 < 4 ? w.sc_lo : w.sc_hi));
        }
        if constexpr (kOffsetShift > 0) {
            const __m256i o = _mm256_madd_epi16(_mm256_load_si256((const __m256i*)x.hs), w.sc);
            p = _mm256_sub_epi32(p, _mm256_slli_epi32(o, kOffsetShift));
        }
        return p;
    }
    static __m256 scale_add(__m256i p, const W& w, const XG& x, __m256 acc) {
        const __m256 dx = _mm256_load_ps(x.d);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(w.d, dx), acc);
        if constexpr (kMin) {
            const __m256i m = _mm256_madd_epi16(_mm256_load_si256((const __m256i*)x.hs), w.mn);
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(w.m, dx), acc);
        }
        return acc;
    }
};

// ------------------------------------------------------------- the tiles --

// One weight type's kernel, for the walk in group_tiling.h. Each (row,
// token) pair's integer sum is Q::dot's (exact whatever the order), its float
// part Q::scale_add, in decode and prefill alike.
template <class Q>
struct Kernel {
    static constexpr int G = hearth::G;
    using XG = hearth::XG;
    using W = typename Q::W;
    using Row = typename Q::Row;
    static constexpr int kPackedTailBlocks = 0;  // 8-block groups: a short last one costs little
    static void prep(const Row& r, int64_t g, int n, W& w) { Q::prep(r, g, n, w); }

    // Decode: each row's groups unpacked once, then used by each of the T
    // tokens (one sequence, or the few rows of a small engine batch).
    template <int T>
    static void decode(const MatmulArgs& a) {
        const int64_t nb = a.k / QK, ng = n_groups(nb, G);
        const XG* x[T];
        for (int j = 0; j < T; j++) x[j] = (const XG*)((const char*)a.x + j * a.x_row_bytes);
        for (int64_t r = a.r0; r < a.r1; r++) {
            const Row row((const char*)a.w + r * a.w_row_bytes);
            __m256 acc[T];
            for (int j = 0; j < T; j++) acc[j] = _mm256_setzero_ps();
            for (int64_t g = 0; g < ng; g++) {
                W w;
                Q::prep(row, g, group_blocks(nb, g, G), w);
                for (int j = 0; j < T; j++) acc[j] = Q::scale_add(Q::dot(w, x[j][g]), w, x[j][g], acc[j]);
            }
            for (int j = 0; j < T; j++) a.y[j * a.y_stride + r] = hsum8(acc[j]);
        }
    }

    template <int R, int T>
    static void tile(const W* const* wr, const XG* const* xr, int64_t ng, int /*tail*/, const W* /*tails*/,
                     float* const* y) {
        __m256 acc[R][T];
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
        for (int64_t g = 0; g < ng; g++)
            for (int i = 0; i < R; i++)
                for (int j = 0; j < T; j++)
                    acc[i][j] = Q::scale_add(Q::dot(wr[i][g], xr[j][g]), wr[i][g], xr[j][g], acc[i][j]);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) y[j][i] = hsum8(acc[i][j]);
    }
};

thread_local Scratch wscratch;

// The next row tile's weights, into L1: two tiles ahead or into L2 (as the
// AVX-512 set does) measured no better here, and 8 decode rows 5 % slower.
constexpr WeightPrefetch kPrefetch{1, false};

// Up to 8 tokens take the decode path (weights unpacked in registers, one
// pass); more go through tiles of rows. The 2 x 2 tiles re-read each token's
// activations for every pair of rows: on the Zen 4 VM with HEARTH_KERNELS=
// avx2 the decode path is 10-22 % faster than they are at 5 to 8 tokens, for
// every type measured (q4_0, q4_1, q8_0 when they took this path, q4_K, q6_K).
constexpr int kDecodeTokens = 8;

template <class Q>
void matmul_q(const MatmulArgs& a) {
    matmul_grouped<Kernel<Q>, 2, 2, kDecodeTokens>(a, wscratch, 256 * 1024, kPrefetch);
}

}  // namespace

void avx2_matmul_q8a(const MatmulArgs& a) {
    switch (a.w_type) {
        case GgmlType::Q8_0:
        case GgmlType::Q4_0:
        case GgmlType::Q4_1: return avx2_rows_matmul_q8a(a);  // row tiles (row_tiles.h)
        case GgmlType::Q5_0: return matmul_q<Nibbles<block_q5_0>>(a);
        case GgmlType::Q5_1: return matmul_q<Nibbles<block_q5_1>>(a);
        case GgmlType::Q2_K: return matmul_q<KQuant16<GgmlType::Q2_K>>(a);
        case GgmlType::Q3_K: return matmul_q<KQuant16<GgmlType::Q3_K>>(a);
        case GgmlType::Q4_K: return matmul_q<KQuant32<GgmlType::Q4_K>>(a);
        case GgmlType::Q5_K: return matmul_q<KQuant32<GgmlType::Q5_K>>(a);
        case GgmlType::Q6_K: return matmul_q<KQuant16<GgmlType::Q6_K>>(a);
        default: return;
    }
}

namespace {

// A token's q8a blocks into XGroups (group_tiling.h; tests/test_kernels.py
// holds every set to the layout). An 8 x 8 dword transpose of the
// 8 blocks' activations (unpacks, then one lane permute) makes q[c] = dword c
// of each block. The half sums are exact integer byte sums (unsigned ones
// times the signed bytes, then the int16 pairs added); blocks past the row's
// end are zeros.
void pack_row_transposed(const block_q8a* x, int64_t k, void* out) {
    const int64_t nb = k / QK;
    XG* xg = (XG*)out;
    const __m256i zero = _mm256_setzero_si256(), ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t g = 0; g < n_groups(nb, G); g++) {
        const int n = group_blocks(nb, g, G);
        const block_q8a* blk = x + g * G;
        __m256i r[8], t[8], u[8];
        for (int l = 0; l < 8; l++) r[l] = l < n ? _mm256_loadu_si256((const __m256i*)blk[l].qs) : zero;
        for (int p = 0; p < 4; p++) {
            t[2 * p] = _mm256_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm256_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
        }
        for (int h = 0; h < 2; h++) {  // blocks 0-3, then 4-7
            u[4 * h + 0] = _mm256_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
            u[4 * h + 1] = _mm256_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
            u[4 * h + 2] = _mm256_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
            u[4 * h + 3] = _mm256_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
        }
        XG& o = xg[g];
        __m256i half[2] = {zero, zero};
        for (int c = 0; c < 4; c++) {  // u[c] lane 0 holds dword c of blocks 0-3, lane 1 dword c + 4
            const __m256i lo = _mm256_permute2x128_si256(u[c], u[4 + c], 0x20);
            const __m256i hi = _mm256_permute2x128_si256(u[c], u[4 + c], 0x31);
            _mm256_store_si256((__m256i*)o.q[c], lo);
            _mm256_store_si256((__m256i*)o.q[4 + c], hi);
            half[0] = _mm256_add_epi32(half[0], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, lo), ones16));
            half[1] = _mm256_add_epi32(half[1], _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, hi), ones16));
        }
        pack_block_scalars<G>(blk, n, o);
        _mm256_store_si256((__m256i*)o.hs, _mm256_or_si256(_mm256_and_si256(half[0], _mm256_set1_epi32(0xffff)),
                                                           _mm256_slli_epi32(half[1], 16)));
        // the struct's padding: zero
        std::memset((char*)(o.hs + G), 0, sizeof(o) - ((char*)(o.hs + G) - (char*)&o));
    }
}

}  // namespace

// A packed row: this file's groups (left unwritten without `groups`), then
// the row tiles' raw part (row_tiles.h).
size_t avx2_q8a_packed_row_bytes(int64_t k) { return RawRow::after_groups<G>(k).end(k); }
void avx2_pack_q8a(const block_q8a* x, int64_t k, void* out, bool groups) {
    static_assert(G == kAvx2GroupBlocks, "avx2_rows.cpp reads the raw part after these groups");
    if (groups) pack_row_transposed(x, k, out);
    pack_raw_row(x, k, RawRow::after_groups<G>(k), out);
}
void avx2_pack_q8a_weights(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    if (row_tiles_type(t)) return pack_row_tiles(t, w, r0, r1, k, out);
    pack_weights<G>(t, w, r0, r1, k, out);
}

}  // namespace hearth
