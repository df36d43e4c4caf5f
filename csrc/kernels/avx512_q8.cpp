// The AVX-512 quantized matmuls with 8-bit activations (q8a), the fast path.
// Compiled with the AVX-512 flags (F, BW, VL, DQ, VNNI) like avx512.cpp; only
// avx512_matmul_q8a and the table's pack entries have external linkage.
//
// The weight types here: q5_0, q5_1 and the K-quants. q4_0, q4_1 and q8_0
// go to avx512_rows.cpp's row tiles (one row per lane, row_tiles.h), which
// need no horizontal sums nor short tails (SmolLM2's q4_1 matmuls ran 1.2x
// to 2.6x faster there on the Zen 4 VM); the layout below is described with
// them, as q5 is q4 with fifth bits.
//
// Layout: blocks go in groups of 16, one int32 lane per block, so that the
// integer dot product of a whole block ends in its own lane and the float
// work (convert, scale, accumulate) is done once per 16 blocks:
//   activations, packed once per input (pack_q8a, group_tiling.h):
//     XGroup::q[c] lane l holds activations 4c..4c+3 of block l (c = 0..7);
//   weights, repacked once at load (pack_q8a_weights, group_tiling.h) so
//     that one load gives a dword of 16 blocks, and unpacked as a row tile
//     is used (WGroup::q[c]):
//     q4_0 / q4_1: dword c of a block's nibble bytes holds elements 4c..4c+3
//       (low nibbles, matching q[c]) and 16+4c..16+4c+3 (high, matching
//       q[4+c]); the nibbles are already unsigned;
//     q8_0: dword c holds elements 4c..4c+3, made unsigned by adding 128.
// vpdpbusd (unsigned weight bytes x signed activation bytes, 4 products per
// lane) then needs no widening; what the unsigned offset adds is taken back
// exactly in integers: the dot products start from -8 * sum(x) (q4_0) or
// -128 * sum(x) (q8_0). q4_1 adds m * d_x * sum(x) in float.
//
// Determinism: every (row, token) output takes the same instruction sequence
// in every tile: per group, integer lanes (exact, in any order), then one
// cvt, mul and fmadd (and q4_1's second fmadd) into a 16-lane accumulator,
// groups in order, hsum16 at the end (plus a short tail's own sum, see
// Kernel::pack_tails). Decode (weights unpacked in registers)
// and prefill (unpacked once per row tile into scratch) run the same
// arithmetic.
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

constexpr int G = 16;  // blocks per group
// A row's last group of at most this many blocks is a short tail (k = 576:
// 16 + 2), computed for a row tile's rows at once (Kernel::pack_tails).
constexpr int kShortTail = 4;

using XG = XGroup<G>;
static_assert(sizeof(XG) == 832, "XGroup layout");

struct alignas(64) WGroup {
    __m512i q[8];  // unsigned weight bytes, lane l = block l, as XGroup::q
    __m512 d;      // d_w per block
    __m512 m;      // q4_1: m per block
};


inline float hsum16(__m512 v) {
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// hsum16 of four vectors at once, in hsum16's own order of additions (lane
// i + i+8, then i + i+4, i + i+2, i + i+1), so that a row tile's outputs
// are bit for bit the decode path's: out[r] = hsum16(v[r]). A third of the
// shuffles and adds of four hsum16s, which counted in short rows (SmolLM2's
// k = 576 is one full group a row).
inline __m128 hsum16x4(__m512 a, __m512 b, __m512 c, __m512 d) {
    // lanes 0-7: a[i] + a[i+8]; lanes 8-15: b's (and c, d)
    const __m512 ab = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_f32x4(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512 cd = _mm512_add_ps(_mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm512_shuffle_f32x4(c, d, _MM_SHUFFLE(3, 2, 3, 2)));
    // quarter r (one per vector): its s8[i] + s8[i+4]
    __m512 u = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
    u = _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(1, 0, 3, 2)));  // lanes 0, 1: s[0] + s[2], s[1] + s[3]
    u = _mm512_add_ps(u, _mm512_permute_ps(u, _MM_SHUFFLE(2, 3, 0, 1)));  // lane 0: s[0] + s[1]
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), u));
}

// hsum16 of each of n vectors, four at a time (a short last four padded
// with zeros, whose sums are dropped): out[j] = hsum16(v[j]).
template <int N>
__attribute__((always_inline)) inline void hsum16_each(const __m512 (&v)[N], float (&out)[N]) {
    const __m512 zero = _mm512_setzero_ps();
    for (int j = 0; j < N; j += 4) {
        if (N - j == 1) {
            out[j] = hsum16(v[j]);
            break;
        }
        alignas(16) float s[4];
        _mm_store_ps(s, hsum16x4(v[j], v[j + 1], j + 2 < N ? v[j + 2] : zero, j + 3 < N ? v[j + 3] : zero));
        for (int i = 0; i < 4 && j + i < N; i++) out[j + i] = s[i];
    }
}

// The outputs of R rows x T tokens: y[j][i] = hsum16(acc[i][j]) + add[j][i]
// (add: a short tail's sums, or null), four rows at a time.
template <int R, int T>
__attribute__((always_inline)) inline void store_sums(const __m512 (&acc)[R][T], float* const* y,
                                                     const float (*add)[R] = nullptr) {
    for (int j = 0; j < T; j++) {
        int i = 0;
        for (; i + 4 <= R; i += 4) {
            __m128 s = hsum16x4(acc[i][j], acc[i + 1][j], acc[i + 2][j], acc[i + 3][j]);
            if (add) s = _mm_add_ps(s, _mm_loadu_ps(add[j] + i));
            _mm_storeu_ps(y[j] + i, s);
        }
        for (; i < R; i++) y[j][i] = add ? hsum16(acc[i][j]) + add[j][i] : hsum16(acc[i][j]);
    }
}

// The short tails (n blocks of group g) of rows r..r+R-1, side by side as
// one whole packed group (PackedRow's layout for G blocks: row i's blocks
// in lanes [i * n, (i + 1) * n), zeros past R * n), so that one prep
// unpacks them all. Built in registers and stored as whole vectors: the prep
// right after loads them back whole, which a store buffer forwards (loads
// over several narrower stores wait until those reach the cache, and that
// wait cost SmolLM2's 8-sequence step several percent).
template <class Block>
void gather_tails(const MatmulArgs& a, int64_t r, int R, int64_t g, int n, uint8_t* out) {
    constexpr int C = PackedRow<Block>::kQuantBytes / 4;  // dwords per block
    const int N = R * n;
    const __mmask8 blocks = (__mmask8)((1u << n) - 1);  // n <= kShortTail: one xmm of dwords
    const __mmask16 lanes = (__mmask16)((1u << N) - 1);
    // lane l takes block l % n of row l / n, from where row i's blocks sit
    // below: dwords at 4i (quants), halves at 8i (scales); one table per n
    struct Lanes4 {
        alignas(64) int32_t dwords[kShortTail][G];
        alignas(64) int16_t halves[kShortTail][32];
        Lanes4() {
            for (int m = 1; m <= kShortTail; m++)
                for (int l = 0; l < 32; l++) {
                    if (l < G) dwords[m - 1][l] = (l / m) * 4 + l % m;
                    halves[m - 1][l] = (int16_t)((l / m) * 8 + l % m);
                }
        }
    };
    static const Lanes4 kFrom;
    const __m512i dword_at = _mm512_load_si512(kFrom.dwords[n - 1]), half_at = _mm512_load_si512(kFrom.halves[n - 1]);
    const uint8_t* rows[4];
    for (int i = 0; i < R; i++) rows[i] = (const uint8_t*)a.w + (r + i) * a.w_row_bytes;
    for (int c = 0; c < C; c++) {
        __m128i x[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
        for (int i = 0; i < R; i++) x[i] = _mm_maskz_loadu_epi32(blocks, PackedRow<Block>(rows[i]).quants(g, G, c, n));
        __m512i v = _mm512_castsi128_si512(x[0]);
        v = _mm512_inserti32x4(v, x[1], 1);
        v = _mm512_inserti32x4(v, x[2], 2);
        v = _mm512_inserti32x4(v, x[3], 3);
        _mm512_store_si512(out + c * 64, _mm512_maskz_permutexvar_epi32(lanes, dword_at, v));
    }
    constexpr int kScales = has_min<Block>() ? 2 : 1;  // d, then q4_1 / q5_1's m
    for (int k = 0; k < kScales; k++) {
        __m128i x[4] = {_mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128(), _mm_setzero_si128()};
        for (int i = 0; i < R; i++) {
            const PackedRow<Block> row(rows[i]);
            x[i] = _mm_maskz_loadu_epi16(blocks, k == 0 ? row.d(g, G, n) : row.m(g, G, n));
        }
        __m512i v = _mm512_castsi128_si512(x[0]);
        v = _mm512_inserti32x4(v, x[1], 1);
        v = _mm512_inserti32x4(v, x[2], 2);
        v = _mm512_inserti32x4(v, x[3], 3);
        _mm256_store_si256((__m256i*)(out + C * 64 + k * 32),
                           _mm512_castsi512_si256(_mm512_maskz_permutexvar_epi16(lanes, half_at, v)));
    }
}

// A short tail's float parts v_0..v_{n-1} summed in order (see pack_tails).
inline float tail_sum(const float* v, int n) {
    float s = v[0];
    for (int b = 1; b < n; b++) s += v[b];
    return s;
}

// tail_sum of four rows' tails side by side (row i in lanes [i * n, (i + 1)
// * n), n <= 4), in registers: lane l gathers ((v_l + v_{l+1}) + v_{l+2})...,
// the same additions in the same order, then lanes 0, n, 2n, 3n are the rows'.
inline __m128 tail_sums4(__m512 v, int n) {
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 s = v;
    for (int b = 1; b < n; b++) s = _mm512_add_ps(s, _mm512_permutexvar_ps(_mm512_add_epi32(lane, _mm512_set1_epi32(b)), v));
    return _mm512_castps512_ps128(_mm512_permutexvar_ps(_mm512_mullo_epi32(lane, _mm512_set1_epi32(n)), s));
}

// ----------------------------------------------------------- the weights --

// Lanes [0, n) of a group (n < 16 only in a row's last group).
inline __mmask16 first_lanes(int n) { return (__mmask16)((1u << n) - 1); }

// n dwords, one per block (zeros past n).
inline __m512i load_dwords(const uint8_t* p, __mmask16 m) { return _mm512_maskz_loadu_epi32(m, p); }
// n fp16 scales, one per block, as f32 (zeros past n).
inline __m512 load_f16(const uint16_t* p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

// q4 groups: dword c of a block's nibble bytes holds elements 4c..4c+3 (low
// nibbles, matching XGroup::q[c]) and 16+4c..16+4c+3 (high, matching q[4+c]);
// the nibbles are already unsigned.
template <class Block>
inline void prep_nibbles(const PackedRow<Block>& r, int64_t g, int n, __m512i q[8]) {
    const __m512i mask = _mm512_set1_epi8(0x0f);
    for (int c = 0; c < 4; c++) {
        const __m512i P = load_dwords(r.quants(g, G, c, n), first_lanes(n));
        q[c] = _mm512_and_si512(P, mask);
        q[4 + c] = _mm512_and_si512(_mm512_srli_epi16(P, 4), mask);
    }
}

// ------------------------------------------------------------ K-quants --
//
// K-quant rows come repacked (k_packing.h) into the same lanes, one per 32
// weights, with unsigned quants:
//   q4_K, q5_K (a scale and a minimum per 32 weights) run as q4_1 does, with
//     f32 d * scale and -dmin * min per lane made in prep;
//   q6_K, q3_K, q2_K (scales per 16 weights) sum the two 16-weight halves of
//     a lane apart (c < 4 and c >= 4), start each from -offset * its half
//     sum of the activations, and weight them by their integer scales
//     (vpmulld): the whole integer sum of a lane is exact; then one cvt and
//     fmadd by d * d_x; q2_K's minimum is min_lo * hs_lo + min_hi * hs_hi,
//     one vpdpwssd on the int16 pairs, times -dmin * d_x.

struct alignas(64) KGroup {
    __m512i q[8];          // unsigned quants, lane l = 32 weights
    __m512 d;              // f32 per lane: d * scale (per-32 types) or d
    __m512 m;              // per-32 types: -dmin * min; q2_K: -dmin
    __m512i sc_lo, sc_hi;  // per-16 types: int32 scales of the two halves
    __m512i mn;            // q2_K: int16 pairs (min_lo, min_hi)
    __m512i sc;            // q6_K, q3_K: int16 pairs (scale_lo, scale_hi)
};

// The group's super-block values (fp16, n / 8 of each: d, then dmin when
// the type has it) on their 8 lanes each, as f32: one small convert and a
// lane permutation (decode unpacks every group of every row: keep it short).
struct SuperblockScales {
    __m512 d, neg_dmin;
};
template <bool kDmin>
inline SuperblockScales superblock_scales(const uint16_t* p, int n) {
    const bool two = n > 8;  // two super-blocks in the group
    const int count = (two ? 2 : 1) * (kDmin ? 2 : 1);
    // p is only 2-byte aligned: two values are one unaligned 32-bit load
    const __m128 v = _mm_cvtph_ps(count == 4 ? _mm_loadl_epi64((const __m128i*)p)
                                  : count == 2 ? _mm_loadu_si32(p)
                                               : _mm_cvtsi32_si128(*p));
    const __m512i lo_hi = two ? _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0) : _mm512_setzero_si512();
    SuperblockScales s;
    s.d = _mm512_permutexvar_ps(lo_hi, _mm512_castps128_ps512(v));
    if constexpr (kDmin) {
        const __m512i at = _mm512_add_epi32(lo_hi, _mm512_set1_epi32(two ? 2 : 1));
        s.neg_dmin = _mm512_permutexvar_ps(at, _mm512_castps128_ps512(_mm_xor_ps(v, _mm_set1_ps(-0.0f))));
    }
    return s;
}

// q | (b & m), one instruction.
inline __m512i or_and(__m512i q, __m512i b, __m512i m) { return _mm512_ternarylogic_epi32(q, b, m, 0xf8); }

// Bytes shifted left by s (right by -s), within each byte once masked.
inline __m512i shift_bits(__m512i v, int s) { return s >= 0 ? _mm512_slli_epi16(v, s) : _mm512_srli_epi16(v, -s); }

template <class Row>
inline void prep_k_quants(const Row& r, int64_t g, int n, __m512i q[8]) {
    constexpr KLayout L = Row::L;
    const __mmask16 lanes = first_lanes(n);
    if constexpr (L.low == 4) {
        const __m512i mask = _mm512_set1_epi8(0x0f);
        for (int c = 0; c < 4; c++) {
            const __m512i P = load_dwords(r.low(g, G, c, n), lanes);
            q[c] = _mm512_and_si512(P, mask);
            q[4 + c] = _mm512_and_si512(_mm512_srli_epi16(P, 4), mask);
        }
    } else {
        const __m512i mask = _mm512_set1_epi8(3);
        for (int h = 0; h < 2; h++) {
            const __m512i P = load_dwords(r.low(g, G, h, n), lanes);
            for (int c = 0; c < 4; c++) q[4 * h + c] = _mm512_and_si512(shift_bits(P, -2 * c), mask);
        }
    }
    if constexpr (L.high == 1) {  // bit c of byte i to bit high_bit
        const __m512i H = load_dwords(r.high(g, G, 0, n), lanes);
        const __m512i bit = _mm512_set1_epi8((char)(1 << L.high_bit));
        for (int c = 0; c < 8; c++) q[c] = or_and(q[c], shift_bits(H, L.high_bit - c), bit);
    } else if constexpr (L.high == 2) {  // two bits 2c of byte i to bits 4-5
        const __m512i bits = _mm512_set1_epi8(0x30);
        for (int h = 0; h < 2; h++) {
            const __m512i H = load_dwords(r.high(g, G, h, n), lanes);
            for (int c = 0; c < 4; c++) q[4 * h + c] = or_and(q[4 * h + c], shift_bits(H, 4 - 2 * c), bits);
        }
    }
}

// The scales of a per-32 type as f32 lanes: d * scale, -dmin * min.
template <class Row>
inline void prep_scales_32(const Row& r, int64_t g, int n, KGroup& w) {
    const __mmask16 lanes = first_lanes(n);
    const __m512 sc = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, r.scales(g, G, n))));
    const __m512 mn = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(lanes, r.mins(g, G, n))));
    const SuperblockScales s = superblock_scales<true>(r.d(g, G, n), n);
    w.d = _mm512_mul_ps(s.d, sc);
    w.m = _mm512_mul_ps(s.neg_dmin, mn);
}

// The scales of a per-16 type: two bytes per lane, signed (q6_K, q3_K) or
// q2_K's scale | min << 4.
template <class Row>
inline void prep_scales_16(const Row& r, int64_t g, int n, KGroup& w) {
    const __m256i bytes = _mm256_maskz_loadu_epi16(first_lanes(n), r.scales(g, G, n));  // n byte pairs
    if constexpr (Row::L.n_f16 == 2) {  // q2_K
        const __m512i pairs = _mm512_cvtepu8_epi16(bytes);  // lane = (byte_lo, byte_hi) as int16
        const __m512i sc = _mm512_and_si512(pairs, _mm512_set1_epi16(0x0f));
        w.sc_lo = _mm512_and_si512(sc, _mm512_set1_epi32(0xffff));
        w.sc_hi = _mm512_srli_epi32(sc, 16);
        w.mn = _mm512_srli_epi16(pairs, 4);
        const SuperblockScales s = superblock_scales<true>(r.d(g, G, n), n);
        w.d = s.d;
        w.m = s.neg_dmin;
    } else {
        w.sc = _mm512_cvtepi8_epi16(bytes);
        w.sc_lo = _mm512_srai_epi32(_mm512_slli_epi32(w.sc, 16), 16);
        w.sc_hi = _mm512_srai_epi32(w.sc, 16);
        w.d = superblock_scales<false>(r.d(g, G, n), n).d;
    }
}

// q5_0 / q5_1: q4_0 / q4_1 with the fifth bits (bit c of byte i, from
// group_tiling.h's packing) moved to bit 4 of q[c]'s byte i.
template <class Block>
inline void prep_fifth_bits(const PackedRow<Block>& r, int64_t g, int n, __m512i q[8]) {
    const __m512i H = load_dwords(r.quants(g, G, 4, n), first_lanes(n));
    const __m512i bit = _mm512_set1_epi8(0x10);
    for (int c = 0; c < 8; c++) q[c] = or_and(q[c], shift_bits(H, 4 - c), bit);
}

// q5_0 / q5_1 (q4_0 / q4_1 take avx512_rows.cpp on this set): the nibbles
// and the fifth bits are the unsigned quants; q5_0's -16 is taken back from
// the sums' start, q5_1's minimum m is the float m term.
template <class Block>
struct Nibbles {
    using Row = PackedRow<Block>;
    using W = WGroup;
    static constexpr bool kHalves = false;
    static constexpr bool kMTerm = has_min<Block>();
    static_assert(has_fifth_bits<Block>(), "q4_0 / q4_1 take avx512_rows.cpp");
    static constexpr int kOffset = kMTerm ? 0 : 16;
    static void prep(const Row& r, int64_t g, int n, W& w) {
        prep_nibbles(r, g, n, w.q);
        if constexpr (has_fifth_bits<Block>()) prep_fifth_bits(r, g, n, w.q);
        w.d = load_f16(r.d(g, G, n), first_lanes(n));
        if constexpr (kMTerm) w.m = load_f16(r.m(g, G, n), first_lanes(n));
    }
};

template <GgmlType kType>
struct KQuant {
    using Row = KPackedRow<kType>;
    using W = KGroup;
    static constexpr bool kHalves = Row::L.halves;
    static constexpr int kOffset = kType == GgmlType::Q6_K ? 32 : kType == GgmlType::Q3_K ? 4 : 0;
    static constexpr bool kMTerm = !kHalves;      // the per-32 types' minimum (q4_1's form)
    static constexpr bool kMin16 = kType == GgmlType::Q2_K;
    static void prep(const Row& r, int64_t g, int n, W& w) {
        prep_k_quants(r, g, n, w.q);
        if constexpr (kHalves) prep_scales_16(r, g, n, w);
        else prep_scales_32(r, g, n, w);
    }
};

// ----------------------------------------------- narrow groups, same sums --
//
// A row's last group may hold few blocks (k = 736: 16 + 7): its products
// are done on the low 8 or 4 lanes only, with 256- or 128-bit instructions
// at half or a quarter of the cost. The lanes it computes get the same
// operations as on 16 lanes, and every path (decode, prefill, any tile)
// narrows the same group the same way, so results stay bit-identical. (A
// last group of at most 4 blocks, k = 576: 16 + 2, goes further: a row
// tile computes its rows' tails together, Kernel::pack_tails.)
template <int L>
struct Lanes;

template <>
struct Lanes<16> {
    using I = __m512i;
    using F = __m512;
    static I low(__m512i v) { return v; }
    static F low(__m512 v) { return v; }
    static I load_i(const void* p) { return _mm512_load_si512(p); }
    static F load_f(const float* p) { return _mm512_load_ps(p); }
    static I dp(I s, I w, I x) { return _mm512_dpbusd_epi32(s, w, x); }
    static F cvt(I v) { return _mm512_cvtepi32_ps(v); }
    static F mul(F a, F b) { return _mm512_mul_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
    static I mullo(I a, I b) { return _mm512_mullo_epi32(a, b); }
    static I add(I a, I b) { return _mm512_add_epi32(a, b); }
    static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
    static I shl(I a, int s) { return _mm512_slli_epi32(a, s); }
    static I dpw(I s, I a, I b) { return _mm512_dpwssd_epi32(s, a, b); }
    static __m512 merge(__m512, F low) { return low; }
};

template <>
struct Lanes<8> {
    using I = __m256i;
    using F = __m256;
    static I low(__m512i v) { return _mm512_castsi512_si256(v); }
    static F low(__m512 v) { return _mm512_castps512_ps256(v); }
    static I load_i(const void* p) { return _mm256_load_si256((const __m256i*)p); }
    static F load_f(const float* p) { return _mm256_load_ps(p); }
    static I dp(I s, I w, I x) { return _mm256_dpbusd_epi32(s, w, x); }
    static F cvt(I v) { return _mm256_cvtepi32_ps(v); }
    static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
    static I mullo(I a, I b) { return _mm256_mullo_epi32(a, b); }
    static I add(I a, I b) { return _mm256_add_epi32(a, b); }
    static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
    static I shl(I a, int s) { return _mm256_slli_epi32(a, s); }
    static I dpw(I s, I a, I b) { return _mm256_dpwssd_epi32(s, a, b); }
    static __m512 merge(__m512 acc, F low) { return _mm512_insertf32x8(acc, low, 0); }
};

template <>
struct Lanes<4> {
    using I = __m128i;
    using F = __m128;
    static I low(__m512i v) { return _mm512_castsi512_si128(v); }
    static F low(__m512 v) { return _mm512_castps512_ps128(v); }
    static I load_i(const void* p) { return _mm_load_si128((const __m128i*)p); }
    static F load_f(const float* p) { return _mm_load_ps(p); }
    static I dp(I s, I w, I x) { return _mm_dpbusd_epi32(s, w, x); }
    static F cvt(I v) { return _mm_cvtepi32_ps(v); }
    static F mul(F a, F b) { return _mm_mul_ps(a, b); }
    static F fmadd(F a, F b, F c) { return _mm_fmadd_ps(a, b, c); }
    static I mullo(I a, I b) { return _mm_mullo_epi32(a, b); }
    static I add(I a, I b) { return _mm_add_epi32(a, b); }
    static I sub(I a, I b) { return _mm_sub_epi32(a, b); }
    static I shl(I a, int s) { return _mm_slli_epi32(a, s); }
    static I dpw(I s, I a, I b) { return _mm_dpwssd_epi32(s, a, b); }
    static __m512 merge(__m512 acc, F low) { return _mm512_insertf32x4(acc, low, 0); }
};

// The lanes a group of n blocks needs.
inline int lanes_for(int n) { return n > 8 ? 16 : n > 4 ? 8 : 4; }

// What the unsigned weights add, taken back: the sums start from it.
template <class Q, int L>
inline typename Lanes<L>::I start_sums(const XG& x) {
    using V = Lanes<L>;
    // (q4_0's 8 and q8_0's 128: those take avx512_rows.cpp)
    if constexpr (Q::kOffset == 16) return V::low(_mm512_slli_epi32(_mm512_load_si512(x.c8), 1));  // q5_0
    return V::low(_mm512_setzero_si512());
}

// The float part of one (row, token) pair for one group: the same in every tile.
template <class Q, int L, class W>
inline __m512 scale_add(typename Lanes<L>::I p, const W& w, const XG& x, __m512 acc) {
    using V = Lanes<L>;
    typename V::F a = V::fmadd(V::cvt(p), V::mul(V::low(w.d), V::load_f(x.d)), V::low(acc));
    if constexpr (Q::kMTerm) a = V::fmadd(V::low(w.m), V::load_f(x.s), a);
    return V::merge(acc, a);
}

// Per-16 K types: the starts of a lane's two half sums, -offset * the
// activations' half sums (int16 pairs in XGroup::hs).
template <class Q, int L>
inline void start_halves(const XG& x, typename Lanes<L>::I& lo, typename Lanes<L>::I& hi) {
    using V = Lanes<L>;
    if constexpr (Q::kOffset == 0) {
        lo = hi = V::low(_mm512_setzero_si512());
    } else {
        constexpr int kShift = Q::kOffset == 32 ? 5 : 2;
        static_assert(Q::kOffset == 32 || Q::kOffset == 4, "offset is a power of two");
        const __m512i hs = _mm512_load_si512(x.hs), zero = _mm512_setzero_si512();
        const __m512i h_lo = _mm512_srai_epi32(_mm512_slli_epi32(hs, 16), 16), h_hi = _mm512_srai_epi32(hs, 16);
        lo = V::low(_mm512_sub_epi32(zero, _mm512_slli_epi32(h_lo, kShift)));
        hi = V::low(_mm512_sub_epi32(zero, _mm512_slli_epi32(h_hi, kShift)));
    }
}

// Per-16 K types: the halves weighted by their scales (exact integers), then
// the float part, the same in every tile.
template <class Q, int L>
inline __m512 finish_halves(typename Lanes<L>::I lo, typename Lanes<L>::I hi, const KGroup& w, const XG& x, __m512 acc,
                            typename Lanes<L>::I off = Lanes<L>::low(_mm512_setzero_si512())) {
    using V = Lanes<L>;
    const typename V::I p = V::sub(V::add(V::mullo(lo, V::low(w.sc_lo)), V::mullo(hi, V::low(w.sc_hi))), off);
    typename V::F a = V::fmadd(V::cvt(p), V::mul(V::low(w.d), V::load_f(x.d)), V::low(acc));
    if constexpr (Q::kMin16) {
        const typename V::I m = V::dpw(V::low(_mm512_setzero_si512()), V::low(w.mn), V::load_i(x.hs));
        a = V::fmadd(V::cvt(m), V::mul(V::low(w.m), V::load_f(x.d)), a);
    }
    return V::merge(acc, a);
}

// ------------------------------------------------------------- the tiles --

// One weight type's kernel, for the walk in group_tiling.h.
template <class Q>
struct Kernel {
    static constexpr int G = hearth::G;
    using XG = hearth::XG;
    using W = typename Q::W;
    using Row = typename Q::Row;
    static void prep(const Row& r, int64_t g, int n, W& w) { Q::prep(r, g, n, w); }

    // A short tail (at most kShortTail blocks) fills too little of a 4-lane
    // group of its own in each row: a row tile computes its R rows'
    // tails together, row i's blocks in lanes [i * n, (i + 1) * n) of one
    // group (pack_tails), against the tokens' tail activations, which the
    // packing repeats across the lanes (lane l holds block l mod n). Every
    // path sums a row's tail apart from its full groups, the same way:
    // y = hsum16(full groups) + (v_0 + v_1 + ...), v_b the float part of
    // tail block b from zero (row_group); so decode, a tile and a lone row
    // agree bit for bit. K-quant rows are whole super-blocks (8 lanes):
    // never a short tail.
    static constexpr int kPackedTailBlocks = std::is_same_v<W, WGroup> ? kShortTail : 0;

    template <int R>
    static void pack_tails(const MatmulArgs& a, int64_t r, int64_t g, int n, W& out) {
        static_assert(R * kShortTail <= G, "a tile's tails fit one group");
        alignas(64) uint8_t group[G * sizeof(typename Row::BlockType)];
        gather_tails<typename Row::BlockType>(a, r, R, g, n, group);
        Q::prep(Row(group), 0, G, out);  // a whole group, zeros past the R * n tails
    }

    // One group of one row and one token, on L lanes.
    template <int L>
    static __m512 row_group(const W& w, const XG& x, __m512 acc) {
        using V = Lanes<L>;
        if constexpr (Q::kHalves) {
            // the offsets' -offset * (sc_lo * hs_lo + sc_hi * hs_hi) as one
            // vpdpwssd on the int16 pairs, not from the tiles' shifted starts
            // (one row per token here: nothing to share them with); the
            // integer sum is the same
            typename V::I lo = V::low(_mm512_setzero_si512()), hi = lo, off = lo;
            if constexpr (Q::kOffset != 0) {
                constexpr int kShift = Q::kOffset == 32 ? 5 : 2;
                off = V::dpw(off, V::low(w.sc), V::load_i(x.hs));
                off = V::shl(off, kShift);
            }
            for (int c = 0; c < 4; c++) lo = V::dp(lo, V::low(w.q[c]), V::load_i(x.q[c]));
            for (int c = 4; c < 8; c++) hi = V::dp(hi, V::low(w.q[c]), V::load_i(x.q[c]));
            return finish_halves<Q, L>(lo, hi, w, x, acc, off);
        } else {
            typename V::I p = start_sums<Q, L>(x);
            for (int c = 0; c < 8; c++) p = V::dp(p, V::low(w.q[c]), V::load_i(x.q[c]));
            return scale_add<Q, L>(p, w, x, acc);
        }
    }

    // Decode: each row's groups unpacked in registers, then used by each of
    // the T tokens (one sequence, or the few rows of a small engine batch).
    template <int T>
    static void decode(const MatmulArgs& a) {
        const int64_t nb = a.k / QK, ng = n_groups(nb, G);
        const int tail = group_blocks(nb, ng - 1, G);
        switch (lanes_for(tail)) {
            case 16: return decode<T, 16>(a, ng, tail);
            case 8: return decode<T, 8>(a, ng, tail);
            default: return decode<T, 4>(a, ng, tail);
        }
    }
    template <int T, int L>
    static void decode(const MatmulArgs& a, int64_t ng, int tail) {
        const XG* x[T];
        for (int j = 0; j < T; j++) x[j] = (const XG*)((const char*)a.x + j * a.x_row_bytes);
        for (int64_t r = a.r0; r < a.r1; r++) {
            const Row row((const char*)a.w + r * a.w_row_bytes);
            __m512 acc[T];
            for (int j = 0; j < T; j++) acc[j] = _mm512_setzero_ps();
            for (int64_t g = 0; g < ng - 1; g++) {
                W w;
                Q::prep(row, g, G, w);
                for (int j = 0; j < T; j++) acc[j] = row_group<16>(w, x[j][g], acc[j]);
            }
            W w;
            Q::prep(row, ng - 1, tail, w);
            float sums[T];
            if (kPackedTailBlocks > 0 && tail <= kPackedTailBlocks) {  // a short tail, summed apart (see pack_tails)
                hsum16_each<T>(acc, sums);
                for (int j = 0; j < T; j++) {
                    alignas(64) float v[G];
                    _mm512_store_ps(v, row_group<4>(w, x[j][ng - 1], _mm512_setzero_ps()));
                    a.y[j * a.y_stride + r] = sums[j] + tail_sum(v, tail);
                }
                continue;
            }
            for (int j = 0; j < T; j++) acc[j] = row_group<L>(w, x[j][ng - 1], acc[j]);
            hsum16_each<T>(acc, sums);
            for (int j = 0; j < T; j++) a.y[j * a.y_stride + r] = sums[j];
        }
    }

    // Group g of R rows x T tokens, on L lanes.
    template <int L, int R, int T>
    static void tile_group(const W* const* wr, const XG* const* xr, int64_t g, __m512 (&acc)[R][T]) {
        if constexpr (Q::kHalves) return tile_group_halves<L>(wr, xr, g, acc);
        using V = Lanes<L>;
        typename V::I p[R][T];
        for (int j = 0; j < T; j++) {
            const typename V::I s = start_sums<Q, L>(xr[j][g]);
            for (int i = 0; i < R; i++) p[i][j] = s;
        }
        for (int c = 0; c < 8; c++) {
            typename V::I xv[T];
            for (int j = 0; j < T; j++) xv[j] = V::load_i(xr[j][g].q[c]);
            for (int i = 0; i < R; i++) {
                const typename V::I wv = V::low(wr[i][g].q[c]);
                for (int j = 0; j < T; j++) p[i][j] = V::dp(p[i][j], wv, xv[j]);
            }
        }
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = scale_add<Q, L>(p[i][j], wr[i][g], xr[j][g], acc[i][j]);
    }

    // The same for the per-16 K types: each lane's two halves summed apart.
    template <int L, int R, int T>
    static void tile_group_halves(const W* const* wr, const XG* const* xr, int64_t g, __m512 (&acc)[R][T]) {
        using V = Lanes<L>;
        typename V::I p[2][R][T];
        for (int j = 0; j < T; j++) {
            typename V::I lo, hi;
            start_halves<Q, L>(xr[j][g], lo, hi);
            for (int i = 0; i < R; i++) p[0][i][j] = lo, p[1][i][j] = hi;
        }
        for (int c = 0; c < 8; c++) {
            typename V::I xv[T];
            for (int j = 0; j < T; j++) xv[j] = V::load_i(xr[j][g].q[c]);
            for (int i = 0; i < R; i++) {
                const typename V::I wv = V::low(wr[i][g].q[c]);
                for (int j = 0; j < T; j++) p[c / 4][i][j] = V::dp(p[c / 4][i][j], wv, xv[j]);
            }
        }
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = finish_halves<Q, L>(p[0][i][j], p[1][i][j], wr[i][g], xr[j][g], acc[i][j]);
    }

    // R rows' unpacked groups (ng each, in scratch) x T tokens' packed groups;
    // tail = the blocks of the last group; tails: the rows' short tails
    // packed together (null when the tail is not short).
    template <int R, int T>
    static void tile(const W* const* wr, const XG* const* xr, int64_t ng, int tail, const W* tails,
                     float* const* y) {
        if constexpr (kPackedTailBlocks == 0) {
            return tile_full<R, T>(wr, xr, ng, tail, y);
        } else {
            if (!tails) return tile_full<R, T>(wr, xr, ng, tail, y);
            __m512 acc[R][T];
            for (int i = 0; i < R; i++)
                for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
            for (int64_t g = 0; g < ng - 1; g++) tile_group<16>(wr, xr, g, acc);
            switch (lanes_for(R * tail)) {
                case 16: return packed_tails<16>(*tails, xr, ng - 1, tail, acc, y);
                case 8: return packed_tails<8>(*tails, xr, ng - 1, tail, acc, y);
                default: return packed_tails<4>(*tails, xr, ng - 1, tail, acc, y);
            }
        }
    }

    template <int R, int T>
    static void tile_full(const W* const* wr, const XG* const* xr, int64_t ng, int tail, float* const* y) {
        __m512 acc[R][T];
        for (int i = 0; i < R; i++)
            for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
        for (int64_t g = 0; g < ng - 1; g++) tile_group<16>(wr, xr, g, acc);
        switch (lanes_for(tail)) {
            case 16: tile_group<16>(wr, xr, ng - 1, acc); break;
            case 8: tile_group<8>(wr, xr, ng - 1, acc); break;
            default: tile_group<4>(wr, xr, ng - 1, acc); break;
        }
        store_sums<R, T>(acc, y);
    }

    // The outputs of R rows with packed short tails (n blocks each), on L lanes.
    // The tokens' products interleave, two chains each: one token's eight
    // dependent vpdpbusd alone would wait on each other's latency. (Integer
    // sums: any order gives row_group's.)
    template <int L, int R, int T>
    static void packed_tails(const W& tw, const XG* const* xr, int64_t g, int n, __m512 (&acc)[R][T],
                             float* const* y) {
        using V = Lanes<L>;
        typename V::I p[T][2];
        for (int j = 0; j < T; j++) p[j][0] = start_sums<Q, L>(xr[j][g]), p[j][1] = V::low(_mm512_setzero_si512());
        for (int c = 0; c < 8; c++)
            for (int j = 0; j < T; j++) p[j][c & 1] = V::dp(p[j][c & 1], V::low(tw.q[c]), V::load_i(xr[j][g].q[c]));
        __m512 v[T];
        for (int j = 0; j < T; j++) v[j] = scale_add<Q, L>(V::add(p[j][0], p[j][1]), tw, xr[j][g], _mm512_setzero_ps());
        if constexpr (R == 4) {  // a tile: its rows' sums and tails four at a time
            for (int j = 0; j < T; j++) {
                const __m128 s = hsum16x4(acc[0][j], acc[1][j], acc[2][j], acc[3][j]);
                _mm_storeu_ps(y[j], _mm_add_ps(s, tail_sums4(v[j], n)));
            }
        } else {
            float tails[T][R];
            for (int j = 0; j < T; j++) {
                alignas(64) float lanes[G];
                _mm512_store_ps(lanes, v[j]);
                for (int i = 0; i < R; i++) tails[j][i] = tail_sum(lanes + i * n, n);
            }
            store_sums<R, T>(acc, y, tails);
        }
    }
};

thread_local Scratch wscratch;

// Weights two row tiles ahead, into L2: into L1 they pushed out the tokens'
// activations, which every row tile reads again (16 decode rows of 896
// weights are 26 KB of L1's 32), and one tile ahead was too late. On the Zen
// 4 VM a 16-row step over Qwen2.5-0.5B's q8_0 output matrix ran 11 % faster,
// its q4_0 matrices 5-10 % (8 to 16 rows), prefill unchanged (measured when
// those types still took this file).
constexpr WeightPrefetch kPrefetch{2, true};

// Up to 4 tokens (decode, a small engine batch) take the decode path, one
// pass over the weights unpacked in registers; more go through row tiles,
// which read each token's activations once per 4 rows. Raised to 6, single
// q4_K / q6_K matrices ran faster at 5-6 tokens, but the engine's whole step
// with 6 sequences ran 18 % slower (Qwen2.5-0.5B shape, Zen 4 VM): the
// decode path reads all the tokens' activations again for every row, and
// the down projection's (k = 4864) no longer fit in L1.
constexpr int kDecodeTokens = 4;

template <class Q>
void matmul_q(const MatmulArgs& a) {
    // the per-16 K types hold two sums per pair: a tile of 4 x 2 fits the registers
    if constexpr (Q::kHalves) matmul_grouped<Kernel<Q>, 4, 2, kDecodeTokens>(a, wscratch, 512 * 1024, kPrefetch);
    else matmul_grouped<Kernel<Q>, 4, 3, kDecodeTokens>(a, wscratch, 512 * 1024, kPrefetch);
}

}  // namespace

void avx512_matmul_q8a(const MatmulArgs& a) {
    switch (a.w_type) {
        case GgmlType::Q8_0:
        case GgmlType::Q4_0:
        case GgmlType::Q4_1: return avx512_rows_matmul_q8a(a);  // row tiles (row_tiles.h)
        case GgmlType::Q5_0: return matmul_q<Nibbles<block_q5_0>>(a);
        case GgmlType::Q5_1: return matmul_q<Nibbles<block_q5_1>>(a);
        case GgmlType::Q2_K: return matmul_q<KQuant<GgmlType::Q2_K>>(a);
        case GgmlType::Q3_K: return matmul_q<KQuant<GgmlType::Q3_K>>(a);
        case GgmlType::Q4_K: return matmul_q<KQuant<GgmlType::Q4_K>>(a);
        case GgmlType::Q5_K: return matmul_q<KQuant<GgmlType::Q5_K>>(a);
        case GgmlType::Q6_K: return matmul_q<KQuant<GgmlType::Q6_K>>(a);
        default: return;
    }
}

namespace {

// A token's q8a blocks into XGroups (group_tiling.h; tests/test_kernels.py
// holds every set to the layout). Blocks l and l + 8 share a zmm
// (their 8 dwords of activations in each half), and an 8 x 8 dword transpose
// in both halves at once (unpacks, then one two-source permute) makes q[c] =
// dword c of the 16 blocks. The half sums are exact integer byte sums
// (vpdpbusd with unsigned ones); blocks past the row's end are zeros.
// The per-block scalars are gathered into registers too (group_tiling.h's
// pack_block_scalars, lane for lane): stored one lane at a time, they were
// read back whole at once, which the store buffer cannot forward.
//
// A short tail (n <= kShortTail blocks) has its lanes repeated, lane l =
// block l mod n, for the rows of a packed tail (Kernel::pack_tails); lanes
// past n meet zero weights everywhere else, so they change no other sum.
struct BlockOfLane {  // [n][l] = l mod n, for short tails of n blocks
    alignas(64) int32_t at[kShortTail + 1][G];
    constexpr BlockOfLane() : at{} {
        for (int n = 1; n <= kShortTail; n++)
            for (int l = 0; l < G; l++) at[n][l] = l % n;
    }
};
constexpr BlockOfLane kBlockOfLaneTable;
constexpr auto& kBlockOfLane = kBlockOfLaneTable.at;

void pack_row_transposed(const block_q8a* x, int64_t k, void* out) {
    const int64_t nb = k / QK;
    XG* xg = (XG*)out;
    const __m512i zero = _mm512_setzero_si512(), ones = _mm512_set1_epi8(1);
    // quadword indices of [a.lane0, b.lane0, a.lane2, b.lane2] and of lanes 1 and 3
    const __m512i even_lanes = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
    const __m512i odd_lanes = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    // byte offsets of block l's d (and, 4 bytes on, its sum)
    const __m512i block_offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                     _mm512_set1_epi32((int)sizeof(block_q8a)));
    static_assert(offsetof(block_q8a, sum) == offsetof(block_q8a, d) + 4, "d, then sum");
    for (int64_t g = 0; g < n_groups(nb, G); g++) {
        const int n = group_blocks(nb, g, G);
        const block_q8a* blk = x + g * G;
        auto qs = [&](int l) {
            return l < n ? _mm256_loadu_si256((const __m256i*)blk[l].qs) : _mm256_setzero_si256();
        };
        __m512i r[8], t[8], u[8];
        for (int l = 0; l < 8; l++) r[l] = _mm512_inserti64x4(_mm512_castsi256_si512(qs(l)), qs(l + 8), 1);
        for (int p = 0; p < 4; p++) {
            t[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]);
            t[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
        }
        for (int h = 0; h < 2; h++) {  // blocks 0-3 (and 8-11), then 4-7 (12-15)
            u[4 * h + 0] = _mm512_unpacklo_epi64(t[4 * h], t[4 * h + 2]);
            u[4 * h + 1] = _mm512_unpackhi_epi64(t[4 * h], t[4 * h + 2]);
            u[4 * h + 2] = _mm512_unpacklo_epi64(t[4 * h + 1], t[4 * h + 3]);
            u[4 * h + 3] = _mm512_unpackhi_epi64(t[4 * h + 1], t[4 * h + 3]);
        }
        // the group in registers, in XGroup's order: q[0..7], d, c8, c128, s, hs
        constexpr int kVectors = (int)(sizeof(XG) / sizeof(__m512i));
        static_assert(kVectors == 13, "XGroup: q[8], d, c8, c128, s, hs");
        __m512i v[kVectors];
        __m512i half[2] = {zero, zero};
        for (int c = 0; c < 4; c++) {  // u[c]: lanes 0 / 2 hold dword c of blocks 0-3 / 8-11, lanes 1 / 3 dword c + 4
            v[c] = _mm512_permutex2var_epi64(u[c], even_lanes, u[4 + c]);
            v[4 + c] = _mm512_permutex2var_epi64(u[c], odd_lanes, u[4 + c]);
            half[0] = _mm512_dpbusd_epi32(half[0], ones, v[c]);
            half[1] = _mm512_dpbusd_epi32(half[1], ones, v[4 + c]);
        }
        const __mmask16 in = (__mmask16)((1u << n) - 1);
        const __m512 d = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), in, block_offsets, &blk->d, 1);
        const __m512i sum = _mm512_mask_i32gather_epi32(zero, in, block_offsets, &blk->sum, 1);
        v[8] = _mm512_castps_si512(d);
        v[9] = _mm512_sub_epi32(zero, _mm512_slli_epi32(sum, 3));    // -8 * sum
        v[10] = _mm512_sub_epi32(zero, _mm512_slli_epi32(sum, 7));   // -128 * sum
        v[11] = _mm512_castps_si512(_mm512_mul_ps(d, _mm512_cvtepi32_ps(sum)));
        v[12] = _mm512_or_si512(_mm512_and_si512(half[0], _mm512_set1_epi32(0xffff)), _mm512_slli_epi32(half[1], 16));
        if (n <= kShortTail) {
            const __m512i at = _mm512_load_si512(kBlockOfLane[n]);
            for (int a = 0; a < kVectors; a++) v[a] = _mm512_permutexvar_epi32(at, v[a]);
        }
        __m512i* dst = (__m512i*)&xg[g];
        for (int a = 0; a < kVectors; a++) _mm512_store_si512(dst + a, v[a]);
    }
}

}  // namespace

// A packed row: this file's groups (left unwritten without `groups`), then
// the row tiles' raw part (row_tiles.h).
size_t avx512_q8a_packed_row_bytes(int64_t k) { return RawRow::after_groups<G>(k).end(k); }
void avx512_pack_q8a(const block_q8a* x, int64_t k, void* out, bool groups) {
    static_assert(G == kAvx512GroupBlocks, "avx512_rows.cpp and amx.cpp read the raw part after these groups");
    if (groups) pack_row_transposed(x, k, out);
    pack_raw_row(x, k, RawRow::after_groups<G>(k), out);
}
void avx512_pack_q8a_weights(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    if (row_tiles_type(t)) return pack_row_tiles(t, w, r0, r1, k, out);
    pack_weights<G>(t, w, r0, r1, k, out);
}

}  // namespace hearth
