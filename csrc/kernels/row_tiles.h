// The row-tile layout of q4_0, q4_1 and q8_0 weights for 8-bit activations,
// shared by the AVX2 set (avx2_rows.cpp: vpmaddubsw), the AVX-512 set
// (avx512_rows.cpp: vpdpbusd) and the AMX set (amx.cpp: the tile unit for
// whole tiles of 16 tokens). No SIMD here (row_tiles_avx512.h has the
// AVX-512 helpers); like group_tiling.h it lives in an anonymous namespace,
// so each kernel file gets its own copy compiled with its flags.
//
// One row per lane: a vector holds the same 4 weights of 16 rows (AVX2: two
// vectors of 8), so a block's integer dot product of those rows and one
// token takes 8 products with the token's 4 bytes broadcast, and its float
// work is done once per block for all the rows. The arithmetic of one
// (row, token) output, in every path and every set:
// for each block b in order,
//   acc = fma(cvt(p_b), d_w * d_x, acc)        p_b: the block's exact integer
//   q4_1 then acc = fma(m_w, d_x * sum(x), acc)      dot product
// one chain per output, no horizontal sums: the same bits in every set.
// (The other layout, one block per lane (group_tiling.h), keeps a chain per
// lane and adds them at the end: a row of 18 blocks, SmolLM2's k = 576,
// spends much of its time on that sum and on its 2-block tail. It stays
// for q5 and the K-quants.)
//
// Weights, repacked at load (pack_row_tiles): tiles of 16 rows (the last
// one n <= 16), and in a tile, block after block:
//   dword c of the block's quants for each of the n rows ([c][n]: c < 4 for
//   q4, whose dword c holds elements 4c..4c+3 in its low nibbles and
//   16+4c.. in its high ones; c < 8 for q8_0), then the n rows' fp16 d, then
//   q4_1's n fp16 m.
// The same bytes as the rows; a load gives a dword of 16 rows, one per lane.
// Activations (each set's pack_q8a): the set's groups (group_tiling.h: its
// paths read them, for the other weight types; unwritten when the model has
// none of those), then this raw part: the blocks' 32 bytes in order (the
// tile unit loads them directly), their d, their sum and d * sum
// (pack_raw_row).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"

namespace hearth {
namespace {

constexpr int kTileRows = 16;  // rows per weight tile, lanes of an AVX-512 vector

enum class WKind { Q4_0, Q4_1, Q8_0 };

template <WKind kKind>
struct Traits;
template <>
struct Traits<WKind::Q4_0> {
    using Block = block_q4_0;
    static constexpr int kDwords = 4;  // quant dwords per block and row
    static constexpr int kOffset = 8;  // what the unsigned weights add, per sum(x)
    static constexpr bool kMin = false;
};
template <>
struct Traits<WKind::Q4_1> {
    using Block = block_q4_1;
    static constexpr int kDwords = 4;
    static constexpr int kOffset = 0;
    static constexpr bool kMin = true;
};
template <>
struct Traits<WKind::Q8_0> {
    using Block = block_q8_0;
    static constexpr int kDwords = 8;
    static constexpr int kOffset = 128;
    static constexpr bool kMin = false;
};

// The byte offset of block b of the weight tile that starts at row tile_r0
// (n_rows rows).
template <WKind kKind>
inline const uint8_t* tile_block(const MatmulArgs& a, int64_t tile_r0, int n_rows, int64_t b) {
    return (const uint8_t*)a.w + tile_r0 * a.w_row_bytes + b * n_rows * sizeof(typename Traits<kKind>::Block);
}

// The weight tile that holds row r, its first row and its rows.
inline int64_t tile_of(int64_t r) { return r / kTileRows * kTileRows; }
inline int tile_rows(const MatmulArgs& a, int64_t tile_r0) {
    const int64_t rows = a.w_rows > 0 ? a.w_rows : a.r1;
    return (int)(rows - tile_r0 < kTileRows ? rows - tile_r0 : kTileRows);
}
// The lanes of the tile at tile_r0 (n rows) that belong to [a.r0, a.r1).
inline int first_lane(const MatmulArgs& a, int64_t tile_r0) { return a.r0 > tile_r0 ? (int)(a.r0 - tile_r0) : 0; }
inline int end_lane(const MatmulArgs& a, int64_t tile_r0, int n) {
    return a.r1 < tile_r0 + n ? (int)(a.r1 - tile_r0) : n;
}

// ------------------------------------------------------ activations --

// Blocks per group of each set's packed activation row (avx2_q8.cpp's and
// avx512_q8.cpp's G; the amx set packs as avx512): the raw part follows them.
constexpr int kAvx2GroupBlocks = 8;
constexpr int kAvx512GroupBlocks = 16;

// The raw part of a token's packed row: byte offsets, after the set's
// groups of G blocks.
struct RawRow {
    size_t qs, d, sum, s;
    template <int G>
    static RawRow after_groups(int64_t k) {
        return RawRow(k, packed_row_bytes<G>(k));
    }
    size_t end(int64_t k) const { return s + 4 * (k / QK); }

private:
    RawRow(int64_t k, size_t groups_bytes) {
        const int64_t nb = k / QK;
        qs = groups_bytes;
        d = qs + (size_t)k;
        sum = d + 4 * nb;
        s = sum + 4 * nb;
    }
};

// A token's packed row, read by broadcasts.
struct Token {
    const uint8_t* row;
    float d(const RawRow& o, int64_t b) const { return ((const float*)(row + o.d))[b]; }
    int32_t sum(const RawRow& o, int64_t b) const { return ((const int32_t*)(row + o.sum))[b]; }
    float s(const RawRow& o, int64_t b) const { return ((const float*)(row + o.s))[b]; }
    const uint8_t* qdword_at(const RawRow& o, int64_t b, int c) const { return row + o.qs + b * QK + 4 * c; }
    int32_t qdword(const RawRow& o, int64_t b, int c) const {
        int32_t v;
        std::memcpy(&v, qdword_at(o, b, c), 4);
        return v;
    }
};

// The raw part of a token's row of k / 32 q8a blocks, at out + o.
inline void pack_raw_row(const block_q8a* x, int64_t k, const RawRow& o, void* out) {
    uint8_t* row = (uint8_t*)out;
    for (int64_t b = 0; b < k / QK; b++) {
        std::memcpy(row + o.qs + b * QK, x[b].qs, QK);
        const float d = x[b].d, s = x[b].d * (float)x[b].sum;  // as XGroup::s
        const int32_t sum = x[b].sum;
        std::memcpy(row + o.d + 4 * b, &d, 4);
        std::memcpy(row + o.sum + 4 * b, &sum, 4);
        std::memcpy(row + o.s + 4 * b, &s, 4);
    }
}

// ------------------------------------------------------------ weights --

// The weight types in row tiles: those that read this part of the packed
// activations alone (one list, in kernels.h, for the packers and Matmul).
inline bool row_tiles_type(GgmlType t) { return is_quantized(t) && !reads_activation_groups(t); }

// Rows [r0, r1) (r0 on a tile) of a q4_0 / q4_1 / q8_0 tensor of rows of k
// weights into the tiles above, at the same offsets as in w.
template <WKind kKind>
void pack_tiles(const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    using T = Traits<kKind>;
    using Block = typename T::Block;
    const int64_t nb = k / QK;
    const size_t rb = nb * sizeof(Block);
    for (int64_t t0 = r0; t0 < r1; t0 += kTileRows) {
        const int n = (int)(r1 - t0 < kTileRows ? r1 - t0 : kTileRows);
        uint8_t* o = (uint8_t*)out + t0 * rb;
        for (int64_t b = 0; b < nb; b++) {
            auto block = [&](int i) { return (const Block*)((const uint8_t*)w + (t0 + i) * rb) + b; };
            for (int c = 0; c < T::kDwords; c++)
                for (int i = 0; i < n; i++, o += 4) std::memcpy(o, block(i)->qs + 4 * c, 4);
            for (int i = 0; i < n; i++, o += 2) std::memcpy(o, &block(i)->d, 2);
            if constexpr (T::kMin)
                for (int i = 0; i < n; i++, o += 2) std::memcpy(o, &block(i)->m, 2);
        }
    }
}

inline void pack_row_tiles(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    switch (t) {
        case GgmlType::Q4_0: return pack_tiles<WKind::Q4_0>(w, r0, r1, k, out);
        case GgmlType::Q4_1: return pack_tiles<WKind::Q4_1>(w, r0, r1, k, out);
        case GgmlType::Q8_0: return pack_tiles<WKind::Q8_0>(w, r0, r1, k, out);
        default: std::abort();  // the callers pack only row_tiles_type(t)
    }
}

}  // namespace
}  // namespace hearth
