// The AMX kernel set: the AVX-512 set, but for q4_0, q4_1 and q8_0 weights
// with 8-bit activations Intel's tile unit (AMX-INT8, Sapphire Rapids and
// later) does the products of whole tiles of 16 tokens. Compiled with the
// AVX-512 flags plus -mamx-tile -mamx-int8; only amx_kernels() has external
// linkage.
//
// The weights' layout and the arithmetic are the AVX-512 set's row tiles
// (row_tiles.h, row_tiles_avx512.h): the tile unit computes a block's exact integer dot
// products of 16 tokens x 16 rows at once (on signed weights: q4_0's
// nibbles minus 8, q8_0's bytes; q4_1's nibbles unsigned), and the float
// work that follows is row_tiles' own, so a token's outputs are the same
// bits whether it went through the tile unit or avx512_rows.cpp's
// vpdpbusd, which takes the tokens left over.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"
#include "kernels/row_tiles_avx512.h"

namespace hearth {
namespace {

constexpr int kRows = kTileRows;  // rows per weight tile
constexpr int kTokens = 16;       // tokens per tile-unit tile

// The tile unit takes tiles of 16 tokens, and a last one of at least
// kTileRest; the other tokens go through avx512_rows.cpp's vpdpbusd. A tile
// costs about the same whatever its tokens (unpacking the weights, the
// unit's work, and the float work done for all 16 lines), vpdpbusd 8
// instructions per block, row tile and token: on the Xeon VM (q4_1,
// SmolLM2 and Qwen2.5-0.5B shapes, 448-512 rows) 12 tokens cost the same
// either way, 16 were 1.1-1.2x faster on the tile unit, 24 as 16 + 8 1.2x
// faster than as two tiles. (Measured against vpdpbusd 8 tokens at a time;
// 9 to 11 leftover tokens now take avx512_rows.cpp's unpacked row tiles,
// not yet measured on that VM.)
constexpr int64_t kTileRest = 12;

// ------------------------------------------ many tokens: the tile unit --

// The tile unit's configuration (ldtilecfg's 64-byte operand).
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// Two sets of tiles, used in turn by consecutive blocks so that one
// block's store and the next one's products need not wait on each other:
// C (tmm0 / tmm3) = A (tmm1 / tmm4) . B (tmm2 / tmm5), the sums of n_tok
// tokens x 16 rows for one block, from the block's activations of the
// tokens (a line per token, read from the tokens' rows) and its weights of
// the rows (4 bytes of each row per line).
void configure_tiles(int n_tok) {
    TileConfig c;
    for (int set = 0; set < 2; set++) {
        c.rows[3 * set + 0] = (uint8_t)n_tok, c.colsb[3 * set + 0] = kRows * 4;
        c.rows[3 * set + 1] = (uint8_t)n_tok, c.colsb[3 * set + 1] = QK;
        c.rows[3 * set + 2] = QK / 4, c.colsb[3 * set + 2] = kRows * 4;
    }
    // not _tile_loadconfig: GCC 12's names only the first 8 bytes as read,
    // and the stores of rows and colsb were dropped as dead
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// 64 bytes more than a 1 KB C tile: the two C buffers (and the unpacked
// blocks) are not a multiple of 4 KB apart, which the CPU's check of loads
// against earlier stores would take for the same address.
constexpr size_t kCBytes = kTokens * kRows * 4 + 64;

template <WKind kKind>
struct TileRun {
    const UnpackedTile* u;  // the weight tile's blocks, signed (row_tiles_avx512.h)
    const uint8_t* x_qs;  // the first token's raw blocks
    size_t x_stride;
    Token tok[kTokens];   // past the last token: the first
    RawRow o;
    int32_t* c;           // two C buffers
    // The next weight tile, asked for a block at a time during the first
    // tile of tokens (null: none). With one tile of tokens (an engine's
    // decode step) the work per weight tile is short, and the CPU's own
    // prefetcher does not reach far enough ahead to hide memory behind it;
    // asked for all at once, the requests would queue up behind each other.
    const uint8_t* prefetch = nullptr;

    explicit TileRun(int64_t k) : o(RawRow::after_groups<kAvx512GroupBlocks>(k)) {}

    void issue(int set, int64_t b) const {
        const uint8_t* bt = u->q + b * 512;
        const uint8_t* xb = x_qs + b * QK;
        // (the tile intrinsics take their tile numbers as literals)
        if (set == 0) {
            _tile_loadd(2, bt, 64);
            _tile_loadd(1, xb, x_stride);
            _tile_zero(0);
            if constexpr (kKind == WKind::Q4_1) _tile_dpbsud(0, 1, 2);
            else _tile_dpbssd(0, 1, 2);
        } else {
            _tile_loadd(5, bt, 64);
            _tile_loadd(4, xb, x_stride);
            _tile_zero(3);
            if constexpr (kKind == WKind::Q4_1) _tile_dpbsud(3, 4, 5);
            else _tile_dpbssd(3, 4, 5);
        }
    }
    void store(int set) const {
        if (set == 0) _tile_stored(0, c, kRows * 4);
        else _tile_stored(3, (uint8_t*)c + kCBytes, kRows * 4);
    }

    // acc[t] = fma(cvt(p), d_w * d_x, acc[t]) (q4_1 then + m_w * s_x), as decode_tile
    __attribute__((always_inline)) void scale_add(int set, int64_t b, __m512 (&acc)[kTokens]) const {
        const int32_t* cb = (const int32_t*)((const uint8_t*)c + set * kCBytes);
        const __m512 dw = _mm512_load_ps(u->d + b * 16);
        __m512 mw;
        if constexpr (Traits<kKind>::kMin) mw = _mm512_load_ps(u->m + b * 16);
#pragma GCC unroll 16
        for (int t = 0; t < kTokens; t++) {
            const __m512 p = _mm512_cvtepi32_ps(_mm512_load_si512(cb + t * kRows));
            acc[t] = _mm512_fmadd_ps(p, _mm512_mul_ps(dw, _mm512_set1_ps(tok[t].d(o, b))), acc[t]);
            if constexpr (Traits<kKind>::kMin) acc[t] = _mm512_fmadd_ps(mw, _mm512_set1_ps(tok[t].s(o, b)), acc[t]);
        }
    }

    // All blocks, the tile unit two blocks ahead of the float work (whose
    // loads of a block's sums then come well after the store that wrote them).
    __attribute__((always_inline)) void run(int64_t nb, __m512 (&acc)[kTokens]) const {
#pragma GCC unroll 16
        for (int t = 0; t < kTokens; t++) acc[t] = _mm512_setzero_ps();
        issue(0, 0), store(0);
        if (nb > 1) issue(1, 1);
        constexpr size_t kTileBlockBytes = kRows * sizeof(typename Traits<kKind>::Block);
        for (int64_t b = 0; b < nb; b++) {
            const int set = (int)(b & 1);
            if (prefetch)
                for (size_t off = 0; off < kTileBlockBytes; off += 64) __builtin_prefetch(prefetch + b * kTileBlockBytes + off, 0, 2);
            if (b + 1 < nb) store(set ^ 1);
            if (b + 2 < nb) issue(set, b + 2);
            scale_add(set, b, acc);
        }
    }
};

thread_local Scratch amx_scratch;

template <WKind kKind>
void tiles(const MatmulArgs& a) {
    const int64_t nb = a.k / QK;
    const size_t w_bytes = UnpackedTile::bytes(nb) + 64;
    uint8_t* base = (uint8_t*)amx_scratch.get(w_bytes + 2 * kCBytes);
    const UnpackedTile u = UnpackedTile::at(base, nb);
    TileRun<kKind> run(a.k);
    run.u = &u;
    run.x_stride = a.x_row_bytes;
    run.c = (int32_t*)(base + w_bytes);
    // the lines of C past a short token tile are not stored, but the float
    // work reads them (and drops its sums): integers, not garbage
    std::memset(run.c, 0, 2 * kCBytes);
    int configured = -1;
    for (int64_t tr = tile_of(a.r0); tr < a.r1; tr += kRows) {
        const int n = tile_rows(a, tr);
        unpack_tile<kKind, true>(a, tr, n, u);
        run.prefetch = tr + kRows < a.r1 ? (const uint8_t*)a.w + (tr + kRows) * a.w_row_bytes : nullptr;
        const int lo = first_lane(a, tr), hi = end_lane(a, tr, n);
        for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kTokens) {
            const int n_tok = (int)(a.n_tokens - t0 < kTokens ? a.n_tokens - t0 : kTokens);
            if (n_tok != configured) configure_tiles(configured = n_tok);
            run.x_qs = (const uint8_t*)a.x + t0 * a.x_row_bytes + run.o.qs;
            for (int t = 0; t < kTokens; t++) run.tok[t].row = (const uint8_t*)a.x + (t0 + (t < n_tok ? t : 0)) * a.x_row_bytes;
            __m512 acc[kTokens];
            run.run(nb, acc);  // inlined: acc stays in registers
            run.prefetch = nullptr;
            // constant indices (a loop to n_tok would keep acc in memory)
#pragma GCC unroll 16
            for (int t = 0; t < kTokens; t++)
                if (t < n_tok) store_rows(a, t0 + t, tr, lo, hi, acc[t]);
        }
    }
    _tile_release();
}

template <WKind kKind>
void matmul_q(const MatmulArgs& a) {
    // whole tiles of 16 tokens on the tile unit, and the rest too when it
    // nearly fills one; the other tokens on vpdpbusd
    const int64_t rest = a.n_tokens % kTokens;
    const int64_t tiled = rest >= kTileRest ? a.n_tokens : a.n_tokens - rest;
    if (tiled > 0) {
        MatmulArgs head = a;
        head.n_tokens = tiled;
        tiles<kKind>(head);
    }
    if (tiled < a.n_tokens) {
        MatmulArgs tail = a;
        tail.x = (const uint8_t*)a.x + tiled * a.x_row_bytes;
        tail.y = a.y + tiled * a.y_stride;
        tail.n_tokens = a.n_tokens - tiled;
        avx512_rows_matmul_q8a(tail);
    }
}

void amx_matmul_q8a(const MatmulArgs& a) {
    if (a.r1 > a.r0 && a.n_tokens > 0) {
        switch (a.w_type) {
            case GgmlType::Q4_0: return matmul_q<WKind::Q4_0>(a);
            case GgmlType::Q4_1: return matmul_q<WKind::Q4_1>(a);
            case GgmlType::Q8_0: return matmul_q<WKind::Q8_0>(a);
            default: return avx512_matmul_q8a(a);  // q5, the K-quants: avx512's layout and paths
        }
    }
}

void matmul(const MatmulArgs& a) {
    if (is_quantized(a.w_type) && a.x_type == Activations::Q8) return amx_matmul_q8a(a);
    avx512_kernels().matmul(a);  // float weights, the exact q16a path
}

}  // namespace

const KernelTable& amx_kernels() {
    static const KernelTable table = [] {
        KernelTable t = avx512_kernels();
        t.name = "amx";
        t.matmul = matmul;  // the packed rows and weights are avx512's
        return t;
    }();
    return table;
}

}  // namespace hearth
