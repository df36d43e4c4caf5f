// The AVX-512 forms of row_tiles.h's layout, shared by avx512_rows.cpp
// (vpdpbusd) and amx.cpp (the tile unit): a row tile's 16 rows in the 16
// lanes of one vector. Only for files compiled with the AVX-512 flags.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels/row_tiles.h"

namespace hearth {
namespace {

inline __mmask16 first_lanes(int n) { return (__mmask16)((1u << n) - 1); }

// A q4 dword of 16 rows into its elements as bytes (0..15): lo, the low
// nibbles (elements 4c..4c+3 of each row), hi the high ones (16+4c..).
inline void split_nibbles(__m512i q, __m512i& lo, __m512i& hi) {
    const __m512i mask = _mm512_set1_epi8(0x0f);
    lo = _mm512_and_si512(q, mask);
    hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
}

// Block b of the weight tile that starts at row tile_r0, 16 rows to a vector.
template <WKind kKind>
struct TileBlock {
    using T = Traits<kKind>;
    const uint8_t* at;
    int n;  // rows of the tile
    TileBlock(const MatmulArgs& a, int64_t tile_r0, int n_rows, int64_t b)
        : at(tile_block<kKind>(a, tile_r0, n_rows, b)), n(n_rows) {}
    // dword c of each row's quants, lane = row (zeros past n)
    __m512i quants(int c) const { return _mm512_maskz_loadu_epi32(first_lanes(n), at + c * n * 4); }
    __m512 d() const { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(n), at + T::kDwords * n * 4)); }
    __m512 m() const { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(first_lanes(n), at + T::kDwords * n * 4 + 2 * n)); }
};

// Rows [r0, r1) of a tile's 16 lanes for one token: lanes lo..hi of the
// tile that starts at tile_r0 (a matmul's rows need not start on a tile).
inline void store_rows(const MatmulArgs& a, int64_t token, int64_t tile_r0, int lo, int hi, __m512 v) {
    const __mmask16 m = (__mmask16)(first_lanes(hi) & ~first_lanes(lo));
    _mm512_mask_storeu_ps(a.y + token * a.y_stride + tile_r0, m, v);
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

}  // namespace
}  // namespace hearth
