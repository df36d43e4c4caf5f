// What the 8-bit-activation matmuls of every SIMD set share (avx2_q8.cpp with
// groups of 8 blocks, avx512_q8.cpp with 16): the packed activation layout
// (each kernel file packs into it with its own transpose), the repacked
// weights, per-thread scratch, and the loop that walks a matmul in row
// tiles. No SIMD here: like float_tiling.h it lives in an anonymous
// namespace, so each kernel file gets its own copy compiled with its flags.
//
// The layout puts one block per int32 lane: XGroup<G>::q[c] lane l holds
// activations 4c..4c+3 of block l of the group (c = 0..7), so that a block's
// whole integer dot product ends in its own lane and the float work is done
// once per G blocks. The weights are repacked once, at load, so that one load
// gives the same dword of G blocks (PackedRow below).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "kernels/k_packing.h"
#include "kernels/kernels.h"

namespace hearth {
namespace {

template <int G>
struct alignas(64) XGroup {
    int32_t q[8][G];   // q[c][l]: activations 4c..4c+3 of block l
    float d[G];        // d_x per block (0 past the row's end)
    int32_t c8[G];     // -8 * sum(x): what q4_0's unsigned nibbles add
    int32_t c128[G];   // -128 * sum(x): what q8_0's bytes made unsigned add
    float s[G];        // d_x * sum(x): q4_1's m term
    int32_t hs[G];     // the K-quants' half sums: int16 sum(x[0..15]) | sum(x[16..31]) << 16
};

inline int64_t n_groups(int64_t nb, int G) { return (nb + G - 1) / G; }
inline int group_blocks(int64_t nb, int64_t g, int G) { return nb - g * G < G ? (int)(nb - g * G) : G; }

template <int G>
size_t packed_row_bytes(int64_t k) {
    return (size_t)n_groups(k / QK, G) * sizeof(XGroup<G>);
}

// Packing a token's q8a blocks into XGroups is each kernel file's (an
// in-register transpose of the activations' dwords); the per-block scalars
// of a group of n blocks (lanes past n zero) are written here for both.
template <int G>
void pack_block_scalars(const block_q8a* blk, int n, XGroup<G>& o) {
    for (int l = 0; l < G; l++) {
        const bool in = l < n;
        o.d[l] = in ? blk[l].d : 0.0f;
        o.c8[l] = in ? -8 * blk[l].sum : 0;
        o.c128[l] = in ? -128 * blk[l].sum : 0;
        o.s[l] = in ? blk[l].d * (float)blk[l].sum : 0.0f;
    }
}

// ------------------------------------------------- the repacked weights --
//
// A packed row holds the bytes of its GGUF row (so it has the same size) in
// the order the kernels read them: group after group (G blocks; the last
// group has n <= G), each group's bytes together (one stream through memory):
//   its quants: dword c of every block's quants (c < 4: q5's low nibbles)
//     for the n blocks in block order, so that one load of n dwords gives
//     lane l = block l;
//   then the n blocks' fp16 d, in block order; then q5_1's n fp16 m.
// Nothing is converted: the kernels make what they need (unsigned bytes,
// nibbles, f32 scales) from these as they go.
// q5_0 / q5_1 add a dword of fifth bits per block after its quants. (q4_0,
// q4_1 and q8_0 take row tiles instead: row_tiles.h.)
template <class Block>
constexpr bool has_fifth_bits() { return std::is_same_v<Block, block_q5_0> || std::is_same_v<Block, block_q5_1>; }
template <class Block>
constexpr bool has_min() { return std::is_same_v<Block, block_q4_1> || std::is_same_v<Block, block_q5_1>; }

template <class Block>
struct PackedRow {
    using BlockType = Block;
    static constexpr int kQuantBytes = sizeof(Block::qs) + (has_fifth_bits<Block>() ? 4 : 0);
    const uint8_t* row;
    explicit PackedRow(const void* r) : row((const uint8_t*)r) {}
    // group g (of n blocks): dword c of its blocks' quants, n dwords apart
    const uint8_t* quants(int64_t g, int G, int c, int n) const { return row + g * G * sizeof(Block) + c * n * 4; }
    const uint16_t* d(int64_t g, int G, int n) const { return (const uint16_t*)quants(g, G, kQuantBytes / 4, n); }
    const uint16_t* m(int64_t g, int G, int n) const { return d(g, G, n) + n; }  // q4_1 / q5_1 only
};

// q5_0 / q5_1: the fifth bits of a block as the kernels expand them: byte
// i, bit c holds the bit of element 4c + i (the weight of XGroup::q[c]'s
// byte i), c = 0..7.
template <class Block>
uint32_t fifth_bits_dword(const Block& b) {
    uint32_t qh, out = 0;
    std::memcpy(&qh, b.qh, 4);
    for (int c = 0; c < 8; c++)
        for (int i = 0; i < 4; i++) out |= ((qh >> (4 * c + i)) & 1u) << (8 * i + c);
    return out;
}

template <int G, class Block>
void pack_weight_row(const Block* b, int64_t nb, uint8_t* out) {
    constexpr int QB = sizeof(Block::qs);
    for (int64_t g = 0; g < n_groups(nb, G); g++) {
        const int n = group_blocks(nb, g, G);
        const Block* gb = b + g * G;
        uint8_t* o = out + g * G * sizeof(Block);
        for (int c = 0; c < QB / 4; c++)
            for (int l = 0; l < n; l++, o += 4) std::memcpy(o, gb[l].qs + 4 * c, 4);
        if constexpr (has_fifth_bits<Block>())
            for (int l = 0; l < n; l++, o += 4) {
                const uint32_t h = fifth_bits_dword(gb[l]);
                std::memcpy(o, &h, 4);
            }
        for (int l = 0; l < n; l++, o += 2) std::memcpy(o, &gb[l].d, 2);
        if constexpr (has_min<Block>())
            for (int l = 0; l < n; l++, o += 2) std::memcpy(o, &gb[l].m, 2);
    }
}

// Rows [r0, r1) of a q5_0 / q5_1 / K-quant tensor of rows of k
// weights, each packed to its own offset in out: the same as in w, except
// that a K-quant row takes q8a_packed_weight_row_bytes (kernels.h).
template <int G>
void pack_weights(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    const int64_t nb = k / QK;
    const size_t rb = row_bytes(t, k), out_rb = q8a_packed_weight_row_bytes(t, k);
    for (int64_t r = r0; r < r1; r++) {
        const void* src = (const char*)w + r * rb;
        uint8_t* dst = (uint8_t*)out + r * out_rb;
        switch (t) {
            case GgmlType::Q5_0: pack_weight_row<G>((const block_q5_0*)src, nb, dst); break;
            case GgmlType::Q5_1: pack_weight_row<G>((const block_q5_1*)src, nb, dst); break;
            case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K:
            case GgmlType::Q6_K: pack_k_row<G>(t, src, k, dst); break;
            default: std::abort();  // the caller packs only these
        }
    }
}

// Per-thread scratch, 64-byte aligned (grown, never shrunk).
struct Scratch {
    void* p = nullptr;
    size_t n = 0;
    ~Scratch() { std::free(p); }
    void* get(size_t bytes) {
        if (bytes > n) {
            std::free(p);
            n = (bytes + 4095) / 4096 * 4096;
            p = std::aligned_alloc(64, n);
            if (!p) { n = 0; std::abort(); }
        }
        return p;
    }
};

// The walk of one matmul, for a kernel K with:
//   K::G, K::XG (XGroup<G>), K::W (a transposed weight group), K::Row (a
//   packed row: PackedRow here or KPackedRow in k_packing.h),
//   K::prep(Row, g, n_blocks, W&), K::decode<T>(a) (T tokens, in registers),
//   K::tile<R, T>(W* const* rows, const XG* const* tokens, n_groups, blocks of the last group,
//                 const W* tails, float* const* y),
//   K::kPackedTailBlocks: a last group of at most this many blocks (0: never)
//   is computed for the R rows of a tile at once, their blocks side by side
//   in one group that K::pack_tails<R>(a, first row, g, blocks, W&) unpacks
//   and tile() gets as `tails` (null otherwise).
// Decode, up to kMaxDecode rows (each set's own), unpacks each row's groups
// in registers and runs those rows past them; prefill unpacks a row tile
// once into scratch and runs every token of an L2-sized chunk past it.

// How far ahead of the row tile being computed its weights are fetched, and
// into which cache: each kernel set's own, measured (see its matmul_q).
struct WeightPrefetch {
    int tiles_ahead;
    bool into_l2;  // prefetcht1, not prefetcht0: leave L1 to the activations
};

template <class K, int R, int T>
void row_tile(const MatmulArgs& a, int64_t r, int64_t t0, int64_t t1, typename K::W* ws, WeightPrefetch pf) {
    using XG = typename K::XG;
    const int64_t nb = a.k / QK, ng = n_groups(nb, K::G);
    const int tail = group_blocks(nb, ng - 1, K::G);
    // a short tail is not unpacked row by row: the rows' tails go together
    const bool packed_tails = tail <= K::kPackedTailBlocks;
    const typename K::W* wr[R];
    for (int i = 0; i < R; i++) {
        const typename K::Row row((const char*)a.w + (r + i) * a.w_row_bytes);
        typename K::W* dst = ws + i * ng;
        for (int64_t g = 0; g < (packed_tails ? ng - 1 : ng); g++) K::prep(row, g, group_blocks(nb, g, K::G), dst[g]);
        wr[i] = dst;
    }
    const typename K::W* tails = nullptr;
    if constexpr (K::kPackedTailBlocks > 0) {
        if (packed_tails) {
            K::template pack_tails<R>(a, r, ng - 1, tail, ws[R * ng]);
            tails = ws + R * ng;
        }
    }
    // a later tile's weights, from memory while this one computes (its own
    // loads above waited; the tokens' work below is long enough to hide them)
    if (r + (pf.tiles_ahead + 1) * R <= a.r1) {
        const char* later = (const char*)a.w + (r + pf.tiles_ahead * R) * a.w_row_bytes;
        if (pf.into_l2)
            for (size_t off = 0; off < R * a.w_row_bytes; off += 64) __builtin_prefetch(later + off, 0, 2);
        else
            for (size_t off = 0; off < R * a.w_row_bytes; off += 64) __builtin_prefetch(later + off, 0, 3);
    }
    auto token = [&](int64_t t) { return (const XG*)((const char*)a.x + t * a.x_row_bytes); };
    int64_t t = t0;
    for (; t + T <= t1; t += T) {
        const XG* xr[T];
        float* y[T];
        for (int j = 0; j < T; j++) xr[j] = token(t + j), y[j] = a.y + (t + j) * a.y_stride + r;
        K::template tile<R, T>(wr, xr, ng, tail, tails, y);
    }
    if constexpr (T > 2) {  // two tokens left (8 = 3 + 3 + 2): a pair, not two singles
        if (t + 2 <= t1) {
            const XG* xr[2] = {token(t), token(t + 1)};
            float* y[2] = {a.y + t * a.y_stride + r, a.y + (t + 1) * a.y_stride + r};
            K::template tile<R, 2>(wr, xr, ng, tail, tails, y);
            t += 2;
        }
    }
    for (; t < t1; t++) {
        const XG* xr[1] = {token(t)};
        float* y[1] = {a.y + t * a.y_stride + r};
        K::template tile<R, 1>(wr, xr, ng, tail, tails, y);
    }
}

// Up to kMaxDecode tokens take the decode path: one pass over the weights
// with nothing written to scratch.
template <class K, int kMaxDecode, int T = 1>
void decode_tokens(const MatmulArgs& a) {
    if constexpr (T < kMaxDecode)
        if (a.n_tokens > T) return decode_tokens<K, kMaxDecode, T + 1>(a);
    K::template decode<T>(a);
}

template <class K, int R, int T, int kMaxDecode>
void matmul_grouped(const MatmulArgs& a, Scratch& scratch, size_t chunk_bytes, WeightPrefetch pf) {
    const int64_t nb = a.k / QK, ng = n_groups(nb, K::G);
    const int64_t r0 = a.r0, r1 = a.r1, nt = a.n_tokens;
    if (r0 >= r1 || nt <= 0) return;
    if (nb == 0) {  // k = 0: empty sums
        for (int64_t t = 0; t < nt; t++)
            for (int64_t r = r0; r < r1; r++) a.y[t * a.y_stride + r] = 0.0f;
        return;
    }
    if (nt <= kMaxDecode) return decode_tokens<K, kMaxDecode>(a);
    // R rows' groups, then the packed tails
    typename K::W* ws = (typename K::W*)scratch.get((size_t)(R * ng + 1) * sizeof(typename K::W));
    // tokens in chunks whose packed activations stay in L2 while the rows go by
    int64_t chunk = (int64_t)(chunk_bytes / a.x_row_bytes);
    chunk = chunk < T ? T : chunk / T * T;
    for (int64_t t0 = 0; t0 < nt; t0 += chunk) {
        const int64_t t1 = t0 + chunk < nt ? t0 + chunk : nt;
        int64_t r = r0;
        for (; r + R <= r1; r += R) row_tile<K, R, T>(a, r, t0, t1, ws, pf);
        for (; r < r1; r++) row_tile<K, 1, T>(a, r, t0, t1, ws, pf);
    }
}

}  // namespace
}  // namespace hearth
