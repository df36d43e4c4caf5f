// The AMX kernel set: for q4_0, q4_1 and q8_0 weights with 8-bit
// activations, its own layout and matmuls, with Intel's tile unit
// (AMX-INT8, Sapphire Rapids and later) doing the products of whole tiles
// of 16 tokens; everything else is the AVX-512 set's. Compiled with the
// AVX-512 flags plus -mamx-tile -mamx-int8; only amx_kernels() has external
// linkage.
//
// The arithmetic, one (row, token) output: for each block b in order,
//   acc = fma(cvt(p_b), d_w * d_x, acc)      p_b: the block's exact integer
//   q4_1 then acc = fma(m_w, d_x * sum(x), acc)    dot product
// one chain per output, on vectors over 16 rows. (The AVX-512 set keeps 16
// chains per output, one per block mod 16, and adds them up at the end;
// that suits products done a row at a time, not the tile unit's 16 x 16
// blocks of products: its lanes would have to be stored and added up apart.)
// Few tokens (decode) take vpdpbusd on unsigned weights, their offset taken
// back from the start of the sum (q4_0: -8 sum(x), q8_0: -128 sum(x)); many
// take the tile unit on signed weights (q4_0's nibbles minus 8, q8_0's
// bytes; q4_1's nibbles unsigned): the same integers, the same float
// operations, so the same bits on both paths, whatever the batch.
//
// Weights, repacked at load (amx_pack_q8a_weights): tiles of 16 rows (the
// last one n <= 16), and in a tile, block after block:
//   dword c of the block's quants for each of the n rows ([c][n]: c < 4 for
//   q4, whose dword c holds elements 4c..4c+3 in its low nibbles and
//   16+4c.. in its high ones; c < 8 for q8_0), then the n rows' fp16 d, then
//   q4_1's n fp16 m.
// The same bytes as the rows; a load gives a dword of 16 rows, one per lane.
// Activations (amx_pack_q8a): the AVX-512 set's packed row (its paths read
// it, for the other weight types), then the blocks' 32 bytes in order (the
// tile unit's A tiles load them directly), their d, their sum and d * sum.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"

namespace hearth {
namespace {

constexpr int kRows = 16;    // rows per weight tile, lanes of a vector
constexpr int kTokens = 16;  // tokens per tile-unit tile

// The tile unit takes tiles of 16 tokens, and a last one of at least
// kTileRest; the other tokens go through vpdpbusd, kDecodeTokens at a time
// (one pass over the weights each). A tile costs about the same whatever
// its tokens (unpacking the weights, the unit's work, and the float work
// done for all 16 lines), vpdpbusd 8 instructions per block, row tile and
// token: on the Xeon VM (q4_1, SmolLM2 and Qwen2.5-0.5B shapes, 448-512
// rows) 12 tokens cost the same either way, 16 were 1.1-1.2x faster on the
// tile unit, 24 as 16 + 8 1.2x faster than as two tiles.
constexpr int64_t kTileRest = 12;
constexpr int kDecodeTokens = 8;

enum class WKind { Q4_0, Q4_1, Q8_0 };

template <WKind kKind>
struct Traits;
template <>
struct Traits<WKind::Q4_0> {
    using Block = block_q4_0;
    static constexpr int kDwords = 4;  // quant dwords per block and row
    static constexpr int kOffset = 8;
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

// ------------------------------------------------------------ weights --

// Where block b of the weight tile that starts at row r0 lies.
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

template <WKind kKind>
void pack_tiles(const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    using T = Traits<kKind>;
    using Block = typename T::Block;
    const int64_t nb = k / QK;
    const size_t rb = nb * sizeof(Block);
    for (int64_t t0 = r0; t0 < r1; t0 += kRows) {
        const int n = (int)(r1 - t0 < kRows ? r1 - t0 : kRows);
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

// ------------------------------------------------------ activations --

// The raw part of a token's packed row.
struct RawRow {
    size_t qs, d, sum, s;  // byte offsets in the packed row
    explicit RawRow(int64_t k) {
        const int64_t nb = k / QK;
        qs = avx512_q8a_packed_row_bytes(k);
        d = qs + (size_t)k;
        sum = d + 4 * nb;
        s = sum + 4 * nb;
    }
    size_t end(int64_t k) const { return s + 4 * (k / QK); }
};

// A token's packed row and the raw part's offsets, read by broadcasts.
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

// ------------------------------------------------ few tokens: vpdpbusd --

template <WKind kKind, int T>
void decode_tile(const MatmulArgs& a, const RawRow& o, const Token* tok, int64_t tile_r0, int n_rows, __m512 (&acc)[T]) {
    using Tr = Traits<kKind>;
    const int64_t nb = a.k / QK;
    for (int t = 0; t < T; t++) acc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const TileBlock<kKind> blk(a, tile_r0, n_rows, b);
        __m512i w[8];
        if constexpr (Tr::kDwords == 4) {
            for (int c = 0; c < 4; c++) split_nibbles(blk.quants(c), w[c], w[4 + c]);
        } else {
            for (int c = 0; c < 8; c++) w[c] = _mm512_xor_si512(blk.quants(c), _mm512_set1_epi8((char)0x80));
        }
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

// Rows [r0, r1) of the tiles from tile_r0 on (lanes lo..hi of a tile).
inline void store_rows(const MatmulArgs& a, int64_t token, int64_t tile_r0, int lo, int hi, __m512 v) {
    const __mmask16 m = (__mmask16)(first_lanes(hi) & ~first_lanes(lo));
    _mm512_mask_storeu_ps(a.y + token * a.y_stride + tile_r0, m, v);
}

// The tile that holds row r, its first row and its rows.
inline int64_t tile_of(int64_t r) { return r / kRows * kRows; }
inline int tile_rows(const MatmulArgs& a, int64_t tile_r0) {
    const int64_t rows = a.w_rows > 0 ? a.w_rows : a.r1;
    return (int)(rows - tile_r0 < kRows ? rows - tile_r0 : kRows);
}

// T tokens at a time in one pass over the weights (a batch of fewer than
// T: the next smaller T).
template <WKind kKind, int T>
void decode(const MatmulArgs& a) {
    if constexpr (T > 1)
        if (a.n_tokens < T) return decode<kKind, T - 1>(a);
    const RawRow o(a.k);
    int64_t t0 = 0;
    for (; t0 + T <= a.n_tokens; t0 += T) {
        Token tok[T];
        for (int t = 0; t < T; t++) tok[t].row = (const uint8_t*)a.x + (t0 + t) * a.x_row_bytes;
        for (int64_t tr = tile_of(a.r0); tr < a.r1; tr += kRows) {
            const int n = tile_rows(a, tr);
            __m512 acc[T];
            decode_tile<kKind, T>(a, o, tok, tr, n, acc);
            const int lo = a.r0 > tr ? (int)(a.r0 - tr) : 0, hi = a.r1 < tr + n ? (int)(a.r1 - tr) : n;
            for (int t = 0; t < T; t++) store_rows(a, t0 + t, tr, lo, hi, acc[t]);
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

// A weight tile's blocks as the tile unit takes them: per block, its B
// tile (512 bytes: line c = dword c of each row's 32 weight bytes, signed
// for tdpbssd, q4_1's unsigned for tdpbsud), d and q4_1's m as f32 vectors.
struct Unpacked {
    uint8_t* b_tiles;  // nb x 512
    float* d;          // nb x 16
    float* m;          // nb x 16
};

template <WKind kKind>
void unpack_tile(const MatmulArgs& a, int64_t tile_r0, int n_rows, const Unpacked& u) {
    using Tr = Traits<kKind>;
    const int64_t nb = a.k / QK;
    for (int64_t b = 0; b < nb; b++) {
        const TileBlock<kKind> blk(a, tile_r0, n_rows, b);
        uint8_t* bt = u.b_tiles + b * 512;
        if constexpr (Tr::kDwords == 4) {
            for (int c = 0; c < 4; c++) {
                __m512i lo, hi;
                split_nibbles(blk.quants(c), lo, hi);
                if constexpr (Tr::kOffset == 8) {
                    lo = _mm512_sub_epi8(lo, _mm512_set1_epi8(8));
                    hi = _mm512_sub_epi8(hi, _mm512_set1_epi8(8));
                }
                _mm512_store_si512(bt + c * 64, lo);        // elements 4c..4c+3
                _mm512_store_si512(bt + (4 + c) * 64, hi);  // elements 16+4c..
            }
        } else {
            for (int c = 0; c < 8; c++) _mm512_store_si512(bt + c * 64, blk.quants(c));
        }
        _mm512_store_ps(u.d + b * 16, blk.d());
        if constexpr (Tr::kMin) _mm512_store_ps(u.m + b * 16, blk.m());
    }
}

// 64 bytes more than a 1 KB C tile: the two C buffers (and the unpacked
// blocks) are not a multiple of 4 KB apart, which the CPU's check of loads
// against earlier stores would take for the same address.
constexpr size_t kCBytes = kTokens * kRows * 4 + 64;

template <WKind kKind>
struct TileRun {
    const Unpacked* u;
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

    explicit TileRun(int64_t k) : o(k) {}

    void issue(int set, int64_t b) const {
        const uint8_t* bt = u->b_tiles + b * 512;
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
    const size_t w_bytes = (size_t)nb * (512 + 2 * 64) + 64;
    uint8_t* base = (uint8_t*)amx_scratch.get(w_bytes + 2 * kCBytes);
    Unpacked u;
    u.b_tiles = base;
    u.d = (float*)(base + nb * 512);
    u.m = u.d + nb * 16;
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
        unpack_tile<kKind>(a, tr, n, u);
        run.prefetch = tr + kRows < a.r1 ? (const uint8_t*)a.w + (tr + kRows) * a.w_row_bytes : nullptr;
        const int lo = a.r0 > tr ? (int)(a.r0 - tr) : 0, hi = a.r1 < tr + n ? (int)(a.r1 - tr) : n;
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
        decode<kKind, kDecodeTokens>(tail);
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

size_t amx_q8a_packed_row_bytes(int64_t k) { return RawRow(k).end(k); }

void amx_pack_q8a(const block_q8a* x, int64_t k, void* out) {
    avx512_pack_q8a(x, k, out);
    const RawRow o(k);
    uint8_t* row = (uint8_t*)out;
    for (int64_t b = 0; b < k / QK; b++) {
        std::memcpy(row + o.qs + b * QK, x[b].qs, QK);
        const float d = x[b].d, s = x[b].d * (float)x[b].sum;  // as avx512's XGroup::s
        const int32_t sum = x[b].sum;
        std::memcpy(row + o.d + 4 * b, &d, 4);
        std::memcpy(row + o.sum + 4 * b, &sum, 4);
        std::memcpy(row + o.s + 4 * b, &s, 4);
    }
}

// Tiles of 16 rows from r0 (a multiple of 16) to r1 (a multiple of 16 or
// the tensor's last row).
void amx_pack_q8a_weights(GgmlType t, const void* w, int64_t r0, int64_t r1, int64_t k, void* out) {
    switch (t) {
        case GgmlType::Q4_0: return pack_tiles<WKind::Q4_0>(w, r0, r1, k, out);
        case GgmlType::Q4_1: return pack_tiles<WKind::Q4_1>(w, r0, r1, k, out);
        case GgmlType::Q8_0: return pack_tiles<WKind::Q8_0>(w, r0, r1, k, out);
        default: return avx512_pack_q8a_weights(t, w, r0, r1, k, out);
    }
}

}  // namespace

const KernelTable& amx_kernels() {
    static const KernelTable table = [] {
        KernelTable t = avx512_kernels();
        t.name = "amx";
        t.matmul = matmul;
        t.q8a_packed_row_bytes = amx_q8a_packed_row_bytes;
        t.pack_q8a = amx_pack_q8a;
        t.pack_q8a_weights = amx_pack_q8a_weights;
        return t;
    }();
    return table;
}

}  // namespace hearth
