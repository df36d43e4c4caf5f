// The row-tile layout of q4_0, q4_1 and q8_0 weights for 8-bit activations,
// shared by the AVX-512 set (avx512_rows.cpp: vpdpbusd) and the AMX set
// (amx.cpp: the tile unit for whole tiles of 16 tokens). Only for files
// compiled with the AVX-512 flags; like group_tiling.h it lives in an
// anonymous namespace, so each file gets its own copy.
//
// One row per lane: a vector holds the same 4 weights of 16 rows, so a
// block's integer dot product of 16 rows and one token takes 8 vpdpbusd with
// the token's 4 bytes broadcast, and its float work is done once per block
// for 16 rows. The arithmetic of one (row, token) output, in every path:
// for each block b in order,
//   acc = fma(cvt(p_b), d_w * d_x, acc)        p_b: the block's exact integer
//   q4_1 then acc = fma(m_w, d_x * sum(x), acc)      dot product
// one chain per output, no horizontal sums. (avx512_q8.cpp's other layout,
// one block per lane, keeps 16 chains per output and adds them at the end:
// a row of 18 blocks, SmolLM2's k = 576, spends a quarter of its time on
// that sum and on its 2-block tail. It stays for q5 and the K-quants.)
//
// Weights, repacked at load (avx512_rows_pack_weights): tiles of 16 rows
// (the last one n <= 16), and in a tile, block after block:
//   dword c of the block's quants for each of the n rows ([c][n]: c < 4 for
//   q4, whose dword c holds elements 4c..4c+3 in its low nibbles and
//   16+4c.. in its high ones; c < 8 for q8_0), then the n rows' fp16 d, then
//   q4_1's n fp16 m.
// The same bytes as the rows; a load gives a dword of 16 rows, one per lane.
// Activations (avx512_pack_q8a): avx512_q8.cpp's groups (its paths read
// them, for the other weight types), then this raw part: the blocks' 32
// bytes in order (the tile unit loads them directly), their d, their sum
// and d * sum.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"

namespace hearth {
namespace {

constexpr int kTileRows = 16;  // rows per weight tile, lanes of a vector

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

inline __mmask16 first_lanes(int n) { return (__mmask16)((1u << n) - 1); }

// A q4 dword of 16 rows into its elements as bytes (0..15): lo, the low
// nibbles (elements 4c..4c+3 of each row), hi the high ones (16+4c..).
inline void split_nibbles(__m512i q, __m512i& lo, __m512i& hi) {
    const __m512i mask = _mm512_set1_epi8(0x0f);
    lo = _mm512_and_si512(q, mask);
    hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
}

// Where block b of the weight tile that starts at row tile_r0 lies.
template <WKind kKind>
struct TileBlock {
    using T = Traits<kKind>;
    const uint8_t* at;
    int n;  // rows of the tile
    TileBlock(const MatmulArgs& a, int64_t tile_r0, int n_rows, int64_t b)
        : at((const uint8_t*)a.w + tile_r0 * a.w_row_bytes + b * n_rows * sizeof(typename T::Block)), n(n_rows) {}
    // dword c of each row's quants, lane = row (zeros past n)
    __m512i quants(int c) const { return _mm512_maskz_loadu_epi32(first_lanes(n), at + c * n * 4); }
    __m512 d() const { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(n), at + T::kDwords * n * 4)); }
    __m512 m() const { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(n), at + T::kDwords * n * 4 + 2 * n)); }
};

// The weight tile that holds row r, its first row and its rows.
inline int64_t tile_of(int64_t r) { return r / kTileRows * kTileRows; }
inline int tile_rows(const MatmulArgs& a, int64_t tile_r0) {
    const int64_t rows = a.w_rows > 0 ? a.w_rows : a.r1;
    return (int)(rows - tile_r0 < kTileRows ? rows - tile_r0 : kTileRows);
}

// Rows [r0, r1) of a tile's 16 lanes for one token: lanes lo..hi of the
// tile that starts at tile_r0 (a matmul's rows need not start on a tile).
inline void store_rows(const MatmulArgs& a, int64_t token, int64_t tile_r0, int lo, int hi, __m512 v) {
    const __mmask16 m = (__mmask16)(first_lanes(hi) & ~first_lanes(lo));
    _mm512_mask_storeu_ps(a.y + token * a.y_stride + tile_r0, m, v);
}
// The lanes of the tile at tile_r0 (n rows) that belong to [a.r0, a.r1).
inline int first_lane(const MatmulArgs& a, int64_t tile_r0) { return a.r0 > tile_r0 ? (int)(a.r0 - tile_r0) : 0; }
inline int end_lane(const MatmulArgs& a, int64_t tile_r0, int n) {
    return a.r1 < tile_r0 + n ? (int)(a.r1 - tile_r0) : n;
}

// Block b's 32 weights of 16 rows as bytes, w[c] = elements 4c..4c+3 of
// each row: unsigned for vpdpbusd (q4's nibbles, q8_0's bytes + 128: the
// offset is taken back from the sums' start), or signed for the tile unit's
// tdpbssd (q4_0's nibbles - 8, q8_0's bytes; q4_1's nibbles stay unsigned,
// for tdpbsud).
template <WKind kKind, bool kSigned>
inline void block_quants(const TileBlock<kKind>& blk, __m512i (&w)[8]) {
    using Tr = Traits<kKind>;
    if constexpr (Tr::kDwords == 4) {
        for (int c = 0; c < 4; c++) {
            split_nibbles(blk.quants(c), w[c], w[4 + c]);  // elements 4c.. and 16+4c..
            if constexpr (kSigned && Tr::kOffset == 8) {
                w[c] = _mm512_sub_epi8(w[c], _mm512_set1_epi8(8));
                w[4 + c] = _mm512_sub_epi8(w[4 + c], _mm512_set1_epi8(8));
            }
        }
    } else {
        for (int c = 0; c < 8; c++) {
            const __m512i v = blk.quants(c);
            w[c] = kSigned ? v : _mm512_xor_si512(v, _mm512_set1_epi8((char)0x80));
        }
    }
}

// A row tile's blocks unpacked into scratch for the many-token paths: per
// block, 512 bytes of quants (line c = dword c of the 16 rows' 32 weight
// bytes, as block_quants gives them), then d and q4_1's m as f32 vectors.
struct UnpackedTile {
    uint8_t* q;  // nb x 512
    float* d;    // nb x 16
    float* m;    // nb x 16
    static size_t bytes(int64_t nb) { return (size_t)nb * (512 + 2 * 64); }
    // the layout at base (64-byte aligned, bytes(nb) long)
    static UnpackedTile at(uint8_t* base, int64_t nb) {
        UnpackedTile u;
        u.q = base;
        u.d = (float*)(base + nb * 512);
        u.m = u.d + nb * 16;
        return u;
    }
};

template <WKind kKind, bool kSigned>
void unpack_tile(const MatmulArgs& a, int64_t tile_r0, int n_rows, const UnpackedTile& u) {
    using Tr = Traits<kKind>;
    const int64_t nb = a.k / QK;
    for (int64_t b = 0; b < nb; b++) {
        const TileBlock<kKind> blk(a, tile_r0, n_rows, b);
        __m512i w[8];
        block_quants<kKind, kSigned>(blk, w);
        for (int c = 0; c < 8; c++) _mm512_store_si512(u.q + b * 512 + c * 64, w[c]);
        _mm512_store_ps(u.d + b * 16, blk.d());
        if constexpr (Tr::kMin) _mm512_store_ps(u.m + b * 16, blk.m());
    }
}

// ------------------------------------------------------ activations --

// The raw part of a token's packed row: byte offsets.
struct RawRow {
    size_t qs, d, sum, s;
    explicit RawRow(int64_t k) {
        const int64_t nb = k / QK;
        qs = packed_row_bytes<16>(k);  // after avx512_q8.cpp's groups
        d = qs + (size_t)k;
        sum = d + 4 * nb;
        s = sum + 4 * nb;
    }
    size_t end(int64_t k) const { return s + 4 * (k / QK); }
};

// A token's packed row, read by broadcasts.
struct Token {
    const uint8_t* row;
    float d(const RawRow& o, int64_t b) const { return ((const float*)(row + o.d))[b]; }
    int32_t sum(const RawRow& o, int64_t b) const { return ((const int32_t*)(row + o.sum))[b]; }
    float s(const RawRow& o, int64_t b) const { return ((const float*)(row + o.s))[b]; }
    int32_t qdword(const RawRow& o, int64_t b, int c) const {
        int32_t v;
        std::memcpy(&v, row + o.qs + b * QK + 4 * c, 4);
        return v;
    }
};

}  // namespace
}  // namespace hearth
