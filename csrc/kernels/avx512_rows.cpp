// The AVX-512 matmuls of q4_0, q4_1 and q8_0 weights with 8-bit activations,
// in row tiles (the layout and the arithmetic: row_tiles.h). Compiled with
// the AVX-512 flags; the avx512 set calls these from avx512_q8.cpp, the amx
// set for the tokens its tile unit does not take.
//
// Weights are unsigned bytes for vpdpbusd (q4's nibbles as they are, q8_0's
// bytes + 128); what the offset adds is taken back exactly, as the start of
// the integer sum (q4_0: -8 sum(x), q8_0: -128 sum(x)). Two paths, the same
// integers and the same float operations per (row, token), so the same bits
// whatever the batch:
// - few tokens (decode): each block of a row tile unpacked in registers and
//   used by up to kDecodeTokens tokens, one pass over the weights;
// - more: up to 3 row tiles unpacked once into scratch, then the tokens a
//   few at a time against them (tokens_against, tile), the products of
//   3 x 4, 2 x 6 or 1 x 12 (row tiles x tokens) in registers.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"
#include "kernels/row_tiles_avx512.h"

namespace hearth {
namespace {

// Up to this many tokens take the decode path; more, the row tiles. (On
// the Zen 4 VM, the decode path for up to 16 tokens made SmolLM2's 16-sequence
// step 4-6 % slower and its q8_0 output matrix at 12 tokens 1.4x slower:
// 16 accumulators and 8 weight vectors leave the registers short.)
constexpr int kDecodeTokens = 8;

// ------------------------------------------------ few tokens: decode --

// T tokens against one row tile, block by block, the weights unpacked in
// registers.
template <WKind kKind, int T>
void decode_tile(const MatmulArgs& a, const RawRow& o, const Token* tok, int64_t tile_r0, int n_rows,
                 __m512 (&acc)[T]) {
    using Tr = Traits<kKind>;
    const int64_t nb = a.k / QK;
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const TileBlock<kKind> blk(a, tile_r0, n_rows, b);
        __m512i w[8];
        block_quants<kKind, false>(blk, w);
        const __m512 dw = blk.d();
        __m512 mw;
        if constexpr (Tr::kMin) mw = blk.m();
        for (int t = 0; t < T; t++) {
            __m512i p = _mm512_set1_epi32(-Tr::kOffset * tok[t].sum(o, b));
            for (int c = 0; c < 8; c++) p = _mm512_dpbusd_epi32(p, w[c], _mm512_set1_epi32(tok[t].qdword(o, b, c)));
            acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, _mm512_set1_ps(tok[t].d(o, b))), acc[t]);
            if constexpr (Tr::kMin) acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(tok[t].s(o, b)), acc[t]);
        }
    }
}

// T tokens at a time in one pass over the weights (a batch of fewer than
// T: the next smaller T).
template <WKind kKind, int T>
void decode(const MatmulArgs& a) {
    if constexpr (T > 1)
        if (a.n_tokens < T) return decode<kKind, T - 1>(a);
    const RawRow o = RawRow::after_groups<kAvx512GroupBlocks>(a.k);
    int64_t t0 = 0;
    for (; t0 + T <= a.n_tokens; t0 += T) {
        Token tok[T];
        for (int t = 0; t < T; t++) tok[t].row = (const uint8_t*)a.x + (t0 + t) * a.x_row_bytes;
        for (int64_t tr = tile_of(a.r0); tr < a.r1; tr += kTileRows) {
            const int n = tile_rows(a, tr);
            __m512 acc[T];
            decode_tile<kKind, T>(a, o, tok, tr, n, acc);
            for (int t = 0; t < T; t++) store_rows(a, t0 + t, tr, first_lane(a, tr), end_lane(a, tr, n), acc[t]);
        }
    }
    if (t0 < a.n_tokens) {
        MatmulArgs rest = a;
        rest.x = (const uint8_t*)a.x + t0 * a.x_row_bytes;
        rest.y = a.y + t0 * a.y_stride;
        rest.n_tokens = a.n_tokens - t0;
        decode<kKind, T>(rest);
    }
}

// ------------------------------------------- many tokens: row tiles --

// Lines of weights to ask for, spread over a pass's blocks (null: none): the
// next row tiles' bytes, into L2, while the current ones are computed.
struct Prefetch {
    const uint8_t* at = nullptr;
    size_t bytes = 0;            // in all
    size_t bytes_per_block = 0;  // whole lines (a pass's share, set by tokens_against)
};

// R unpacked row tiles x T tokens, all blocks: acc[i][j] for row tile i,
// token j (decode_tile's arithmetic, in the same order).
template <WKind kKind, int R, int T>
__attribute__((always_inline)) inline void tile(const UnpackedTile* u, const RawRow& o, const Token* tok, int64_t nb,
                                                Prefetch pf, __m512 (&acc)[R][T]) {
    using Tr = Traits<kKind>;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        if (pf.at)
            for (size_t off = b * pf.bytes_per_block, end = std::min(off + pf.bytes_per_block, pf.bytes); off < end; off += 64)
                _mm_prefetch((const char*)pf.at + off, _MM_HINT_T1);
        __m512i p[R][T];
        for (int j = 0; j < T; j++) {
            const __m512i s = Tr::kOffset ? _mm512_set1_epi32(-Tr::kOffset * tok[j].sum(o, b)) : _mm512_setzero_si512();
            for (int i = 0; i < R; i++) p[i][j] = s;
        }
        for (int c = 0; c < 8; c++) {
            __m512i w[R];
            for (int i = 0; i < R; i++) w[i] = _mm512_load_si512(u[i].q + b * 512 + c * 64);
            for (int j = 0; j < T; j++) {
                const __m512i x = _mm512_set1_epi32(tok[j].qdword(o, b, c));
                for (int i = 0; i < R; i++) p[i][j] = _mm512_dpbusd_epi32(p[i][j], w[i], x);
            }
        }
        for (int i = 0; i < R; i++) {
            const __m512 dw = _mm512_load_ps(u[i].d + b * 16);
            for (int j = 0; j < T; j++) {
                acc[i][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p[i][j]), _mm512_mul_ps(dw, _mm512_set1_ps(tok[j].d(o, b))), acc[i][j]);
                if constexpr (Tr::kMin)
                    acc[i][j] = _mm512_fmadd_ps(_mm512_load_ps(u[i].m + b * 16), _mm512_set1_ps(tok[j].s(o, b)), acc[i][j]);
            }
        }
    }
}

// Row tiles tiles[0..R) (unpacked in u) x tokens [t0, t0 + T), stored.
template <WKind kKind, int R, int T>
void tile_and_store(const MatmulArgs& a, const UnpackedTile* u, const int64_t* tiles, const int* n, const RawRow& o,
                    int64_t t0, Prefetch pf) {
    Token tok[T];
    for (int j = 0; j < T; j++) tok[j].row = (const uint8_t*)a.x + (t0 + j) * a.x_row_bytes;
    __m512 acc[R][T];
    tile<kKind, R, T>(u, o, tok, a.k / QK, pf, acc);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) store_rows(a, t0 + j, tiles[i], first_lane(a, tiles[i]), end_lane(a, tiles[i], n[i]), acc[i][j]);
}

// The last rest < T tokens: one call of the matching width.
template <WKind kKind, int R, int T>
void rest_tokens(const MatmulArgs& a, const UnpackedTile* u, const int64_t* tiles, const int* n, const RawRow& o,
                 int64_t t0, int rest, Prefetch pf) {
    if constexpr (T >= 1) {
        if (rest == T) return tile_and_store<kKind, R, T>(a, u, tiles, n, o, t0, pf);
        rest_tokens<kKind, R, T - 1>(a, u, tiles, n, o, t0, rest, pf);
    }
}

// All tokens against R unpacked row tiles: T at a time, then the rest
// together (a smaller T).
template <WKind kKind, int R, int T>
void tokens_against(const MatmulArgs& a, const UnpackedTile* u, const int64_t* tiles, const int* n, const RawRow& o,
                    Prefetch pf) {
    int64_t t0 = 0;
    // the next row tiles' bytes, a share in each pass over the tokens (asked
    // for in the first pass alone, a big matrix's requests outran what the
    // memory delivers in it: bench/README.md, 2026-12-07 08:10)
    const int64_t passes = (a.n_tokens + T - 1) / T;
    const size_t share = (pf.bytes / (size_t)passes + 63) / 64 * 64;
    const int64_t nb = a.k / QK;
    auto pass_prefetch = [&](int64_t pass) {
        Prefetch p;
        if (!pf.at || (size_t)pass * share >= pf.bytes) return p;
        p.at = pf.at + pass * share;
        p.bytes = std::min(share, pf.bytes - pass * share);
        p.bytes_per_block = (p.bytes / (size_t)nb + 63) / 64 * 64;
        return p;
    };
    int64_t pass = 0;
    for (; t0 + T <= a.n_tokens; t0 += T, pass++) tile_and_store<kKind, R, T>(a, u, tiles, n, o, t0, pass_prefetch(pass));
    const int rest = (int)(a.n_tokens - t0);
    if (rest > 0) rest_tokens<kKind, R, T - 1>(a, u, tiles, n, o, t0, rest, pass_prefetch(pass));
}

thread_local Scratch row_scratch;

template <WKind kKind>
void tiles(const MatmulArgs& a) {
    constexpr int kMaxR = 3;
    const int64_t nb = a.k / QK;
    uint8_t* base = (uint8_t*)row_scratch.get(kMaxR * UnpackedTile::bytes(nb));
    UnpackedTile u[kMaxR];
    for (int i = 0; i < kMaxR; i++) u[i] = UnpackedTile::at(base + i * UnpackedTile::bytes(nb), nb);
    const RawRow o = RawRow::after_groups<kAvx512GroupBlocks>(a.k);
    for (int64_t tr = tile_of(a.r0); tr < a.r1; tr += kMaxR * kTileRows) {
        int64_t tiles[kMaxR];
        int n[kMaxR], R = 0;
        for (; R < kMaxR && tr + R * kTileRows < a.r1; R++) {
            tiles[R] = tr + R * kTileRows;
            n[R] = tile_rows(a, tiles[R]);
            unpack_tile<kKind, false>(a, tiles[R], n[R], u[R]);
        }
        // the next row tiles of this matmul, asked for during the passes over the tokens
        Prefetch pf;
        const int64_t next = tr + kMaxR * kTileRows, next_end = std::min(a.r1, next + kMaxR * kTileRows);
        if (next < a.r1) {
            pf.at = (const uint8_t*)a.w + next * a.w_row_bytes;
            pf.bytes = (size_t)(next_end - next) * a.w_row_bytes;  // tokens_against shares them out
        }
        if (R == 3) tokens_against<kKind, 3, 4>(a, u, tiles, n, o, pf);
        else if (R == 2) tokens_against<kKind, 2, 6>(a, u, tiles, n, o, pf);
        else tokens_against<kKind, 1, 12>(a, u, tiles, n, o, pf);
    }
}

template <WKind kKind>
void matmul_q(const MatmulArgs& a) {
    if (a.r1 <= a.r0 || a.n_tokens <= 0) return;
    if (a.n_tokens <= kDecodeTokens) return decode<kKind, kDecodeTokens>(a);
    tiles<kKind>(a);
}

}  // namespace

void avx512_rows_matmul_q8a(const MatmulArgs& a) {
    switch (a.w_type) {
        case GgmlType::Q4_0: return matmul_q<WKind::Q4_0>(a);
        case GgmlType::Q4_1: return matmul_q<WKind::Q4_1>(a);
        case GgmlType::Q8_0: return matmul_q<WKind::Q8_0>(a);
        default: return;
    }
}

}  // namespace hearth
