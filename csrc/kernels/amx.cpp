// The AMX kernel set: the AVX-512 set, with its quantized matmuls of many
// tokens (q4_0, q4_1, q8_0 weights, 8-bit activations, 32 tokens and more:
// prefill, long engine steps) done on Intel's tile unit (AMX-INT8,
// Sapphire Rapids and later). Compiled with the AVX-512 flags plus
// -mamx-tile -mamx-int8; only amx_kernels() has external linkage.
//
// Bit for bit the AVX-512 set's results. avx512_q8.cpp computes a (row,
// token) output as 16 float lanes, lane l holding blocks l, l + 16, ... of
// the row: per block, acc = fma(cvt(integer dot product), d_w * d_x, acc)
// (q4_1 then acc = fma(m_w, d_x * sum(x), acc)), then a fixed tree of adds
// over the lanes (hsum16), plus a short last group's blocks summed apart.
// Here the tile unit computes the integer dot products of one block for 16
// tokens x 16 rows at once (exact integers: the same numbers), and the
// float work is done on vectors over 16 rows: each output gets the same
// operations in the same order, so the same bits. So a request's logits do
// not depend on whether its rows went through the tile unit or not.
//
// The products: C (16 tokens x 16 rows, int32) = A (16 tokens x the
// block's 32 activation bytes, signed) . B (the block's 32 weight bytes of
// 16 rows, in the unit's 4-byte-interleaved order). q4_0's nibbles go in
// minus 8 and q8_0's bytes as they are (signed x signed, tdpbssd); q4_1's
// nibbles go in unsigned (tdpbsud): in each case the integer is the one the
// AVX-512 set computes with its offsets taken back. A block is done for 2
// token tiles x 2 row tiles at once (four C tiles: each A and B load serves
// two products).
//
// On the Xeon VM of bench/README.md the unit's work and the AVX-512 float
// work do not overlap (measured apart: a loop of both takes the sum of
// their times), and the float work, three operations per 16 outputs per
// block, is the larger: the matmuls run about 1.4x the AVX-512 set's, not
// the unit's 8x.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/group_tiling.h"
#include "kernels/kernels.h"

namespace hearth {
namespace {

constexpr int G = 16;  // blocks per activation group: the AVX-512 set's
using XG = XGroup<G>;
constexpr int kTile = 16;  // tokens and rows per output tile

// Below this many tokens the AVX-512 set's own paths run: unpacking a row
// tile's weights into tiles is paid once for all the tokens, and up to 24
// tokens it cost what the tile unit saved (q4_1, SmolLM2's and Qwen2.5-0.5B's
// shapes, 64-row tasks: 0.91-1.05x at 16 and 24 tokens, 1.13-1.20x at 32).
constexpr int64_t kMinTokens = 32;

// The tile unit's configuration (ldtilecfg's 64-byte operand).
struct alignas(64) TileConfig {
    uint8_t palette = 1;
    uint8_t start_row = 0;
    uint8_t reserved[14] = {};
    uint16_t colsb[16] = {};
    uint8_t rows[16] = {};
};

// Tiles: C(i, j) = tmm(2i + j), the sums of token tile i and row tile j;
// A(i) = tmm(4 + i), a block of token tile i's activations; B(j) = tmm(6 +
// j), the same block of row tile j's weights. n_tok[i]: tokens of tile i
// (0: no second tile); a C or A tile has a line per token (A's lines are
// read from the tokens' rows: none past the last token).
void configure_tiles(const int (&n_tok)[2]) {
    TileConfig c;
    for (int i = 0; i < 2; i++) {
        const uint8_t rows = (uint8_t)(n_tok[i] > 0 ? n_tok[i] : 1);
        c.rows[2 * i] = c.rows[2 * i + 1] = rows, c.colsb[2 * i] = c.colsb[2 * i + 1] = kTile * 4;
        c.rows[4 + i] = rows, c.colsb[4 + i] = QK;
        c.rows[6 + i] = QK / 4, c.colsb[6 + i] = kTile * 4;  // 4 bytes of each row per line
    }
    // not _tile_loadconfig: GCC 12's names only the first 8 bytes as read,
    // and the stores of rows and colsb were dropped as dead
    __asm__ volatile("ldtilecfg %0" : : "m"(c));
}

// The 16 x 16 transpose of 32-bit lanes: out[c] lane m = in[m] lane c.
inline void transpose16(const __m512i (&in)[16], __m512i (&out)[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(in[2 * i], in[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(in[2 * i], in[2 * i + 1]);
    }
    // u[4i + j], 128-bit lane k: column 4k + j of rows 4i..4i+3
    for (int i = 0; i < 4; i++) {
        u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    // a 4 x 4 transpose of 128-bit lanes for each j
    for (int j = 0; j < 4; j++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[j], u[4 + j], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i x1 = _mm512_shuffle_i32x4(u[j], u[4 + j], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512i y1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], _MM_SHUFFLE(3, 2, 3, 2));
        out[0 + j] = _mm512_shuffle_i32x4(x0, y0, _MM_SHUFFLE(2, 0, 2, 0));
        out[4 + j] = _mm512_shuffle_i32x4(x0, y0, _MM_SHUFFLE(3, 1, 3, 1));
        out[8 + j] = _mm512_shuffle_i32x4(x1, y1, _MM_SHUFFLE(2, 0, 2, 0));
        out[12 + j] = _mm512_shuffle_i32x4(x1, y1, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

inline __mmask16 first_lanes(int n) { return (__mmask16)((1u << n) - 1); }

// A row tile's weights as the tile unit takes them, for every block b of
// the row: b_tile[b] (QK/4 lines of 16 rows x 4 bytes), and the rows' d
// (and q4_1's m) as f32 vectors over the rows.
struct RowTile {
    uint8_t* b_tile;  // nb x 512 bytes
    float* d;         // nb x 16
    float* m;         // nb x 16 (q4_1)
};

enum class WKind { Q4_0, Q4_1, Q8_0 };

template <WKind kKind>
using BlockOf = std::conditional_t<kKind == WKind::Q4_0, block_q4_0,
                                   std::conditional_t<kKind == WKind::Q4_1, block_q4_1, block_q8_0>>;

// Rows [r, r + nr) of the packed weights (group_tiling.h's PackedRow) into
// the tile unit's order; rows past nr are zeros (their outputs are dropped).
template <WKind kKind>
void unpack_row_tile(const MatmulArgs& a, int64_t r, int nr, int64_t nb, const RowTile& out) {
    using Block = BlockOf<kKind>;
    constexpr int kDwords = sizeof(Block::qs) / 4;  // per block: 4 (nibbles) or 8
    const int64_t ng = n_groups(nb, G);
    const uint8_t* rows[kTile];
    for (int m = 0; m < nr; m++) rows[m] = (const uint8_t*)a.w + (r + m) * a.w_row_bytes;
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t g = 0; g < ng; g++) {
        const int n = group_blocks(nb, g, G);
        const __mmask16 lanes = first_lanes(n);
        __m512i in[16], t[16];
        for (int c = 0; c < kDwords; c++) {
            for (int m = 0; m < kTile; m++)
                in[m] = m < nr ? _mm512_maskz_loadu_epi32(lanes, PackedRow<Block>(rows[m]).quants(g, G, c, n)) : zero;
            transpose16(in, t);  // t[l]: dword c of block l for each row
            for (int l = 0; l < n; l++) {
                uint8_t* bt = out.b_tile + (g * G + l) * 512;
                if constexpr (kKind == WKind::Q8_0) {
                    _mm512_store_si512(bt + c * 64, t[l]);
                } else {
                    const __m512i mask = _mm512_set1_epi8(0x0f);
                    __m512i lo = _mm512_and_si512(t[l], mask), hi = _mm512_and_si512(_mm512_srli_epi16(t[l], 4), mask);
                    if constexpr (kKind == WKind::Q4_0) {
                        lo = _mm512_sub_epi8(lo, _mm512_set1_epi8(8));
                        hi = _mm512_sub_epi8(hi, _mm512_set1_epi8(8));
                    }
                    _mm512_store_si512(bt + c * 64, lo);         // elements 4c..4c+3
                    _mm512_store_si512(bt + (4 + c) * 64, hi);  // elements 16+4c..
                }
            }
        }
        constexpr int kScales = kKind == WKind::Q4_1 ? 2 : 1;
        for (int s = 0; s < kScales; s++) {
            for (int m = 0; m < kTile; m++) {
                if (m >= nr) {
                    in[m] = zero;
                    continue;
                }
                const PackedRow<Block> row(rows[m]);
                const uint16_t* p = s == 0 ? row.d(g, G, n) : row.m(g, G, n);
                in[m] = _mm512_castps_si512(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, p)));
            }
            transpose16(in, t);
            float* dst = s == 0 ? out.d : out.m;
            for (int l = 0; l < n; l++) _mm512_store_si512(dst + (g * G + l) * 16, t[l]);
        }
    }
}

// One output tile: up to 2 token tiles x 2 row tiles (NT x NR). The
// tile unit's products of a block come back through memory (c), where the
// float work reads them; the float sums of lane l sit in lanes[l] until the
// lanes are added up at the end.
struct TileSums {
    static constexpr int kSums = 2 * 2 * kTile * kTile;  // [token tile][row tile][token][row]
    float* lanes;  // G x kSums
    float* tails;  // kAvx512ShortTail x kSums
    int32_t* c;    // 2 x kSums: the C tiles, double-buffered
    float* at(float* base, int i, int j, int t) const { return base + ((i * 2 + j) * kTile + t) * kTile; }
};

// A block's work, in the order it is done: block b into the sums of lane
// `dest` (or of tail block dest - G); `first`: the lane's first block (its
// sums start from zero).
struct Item {
    int32_t b;
    int16_t dest;
    bool first;
};

template <WKind kKind, int NT, int NR>
struct OutputTile {
    const RowTile* w[2];
    const uint8_t* x[2];         // token tile i's raw blocks (first token)
    size_t x_stride;
    const uint8_t* t_x[2][kTile];  // each token's packed row (past the tile's end: its first)
    TileSums s;

    // Loads block b's tiles and starts its products (the C tiles' last
    // sums were stored before).
    void issue(int64_t b) const {
        _tile_loadd(6, w[0]->b_tile + b * 512, 64);
        if constexpr (NR == 2) _tile_loadd(7, w[1]->b_tile + b * 512, 64);
        _tile_loadd(4, x[0] + b * QK, x_stride);
        if constexpr (NT == 2) _tile_loadd(5, x[1] + b * QK, x_stride);
        // (the tile intrinsics take their tile numbers as literals)
        if constexpr (kKind == WKind::Q4_1) {
            { _tile_zero(0); _tile_dpbsud(0, 4, 6); }
            if constexpr (NR == 2) { _tile_zero(1); _tile_dpbsud(1, 4, 7); }
            if constexpr (NT == 2) { _tile_zero(2); _tile_dpbsud(2, 5, 6); }
            if constexpr (NT == 2 && NR == 2) { _tile_zero(3); _tile_dpbsud(3, 5, 7); }
        } else {
            { _tile_zero(0); _tile_dpbssd(0, 4, 6); }
            if constexpr (NR == 2) { _tile_zero(1); _tile_dpbssd(1, 4, 7); }
            if constexpr (NT == 2) { _tile_zero(2); _tile_dpbssd(2, 5, 6); }
            if constexpr (NT == 2 && NR == 2) { _tile_zero(3); _tile_dpbssd(3, 5, 7); }
        }
    }
    void store(int buf) const {
        int32_t* c = s.c + buf * TileSums::kSums;
        _tile_stored(0, c + 0 * kTile * kTile, kTile * 4);
        if constexpr (NR == 2) _tile_stored(1, c + 1 * kTile * kTile, kTile * 4);
        if constexpr (NT == 2) {
            _tile_stored(2, c + 2 * kTile * kTile, kTile * 4);
            if constexpr (NR == 2) _tile_stored(3, c + 3 * kTile * kTile, kTile * 4);
        }
    }

    // The float part of block b, as scale_add does in avx512_q8.cpp, on
    // vectors over the rows: sums = fma(cvt(c), d_w * d_x, sums) (q4_1 then
    // + m_w * d_x * sum(x)), from zero when `first`.
    void scale_add(int buf, int64_t b, float* sums, bool first) const {
        const int32_t* c = s.c + buf * TileSums::kSums;
        const size_t d_at = (b / G) * sizeof(XG) + offsetof(XG, d) + (b % G) * 4;
        const size_t s_at = (b / G) * sizeof(XG) + offsetof(XG, s) + (b % G) * 4;
        __m512 dw[NR], mw[NR];
        for (int j = 0; j < NR; j++) {
            dw[j] = _mm512_load_ps(w[j]->d + b * 16);
            if constexpr (kKind == WKind::Q4_1) mw[j] = _mm512_load_ps(w[j]->m + b * 16);
        }
        for (int i = 0; i < NT; i++)
            for (int t = 0; t < kTile; t++) {
                const __m512 dx = _mm512_set1_ps(*(const float*)(t_x[i][t] + d_at));
                __m512 sx;
                if constexpr (kKind == WKind::Q4_1) sx = _mm512_set1_ps(*(const float*)(t_x[i][t] + s_at));
                for (int j = 0; j < NR; j++) {
                    float* acc = s.at(sums, i, j, t);
                    const __m512 p = _mm512_cvtepi32_ps(_mm512_load_si512(c + ((i * 2 + j) * kTile + t) * kTile));
                    __m512 v = _mm512_fmadd_ps(p, _mm512_mul_ps(dw[j], dx), first ? _mm512_setzero_ps() : _mm512_load_ps(acc));
                    if constexpr (kKind == WKind::Q4_1) v = _mm512_fmadd_ps(mw[j], sx, v);
                    _mm512_store_ps(acc, v);
                }
            }
    }

    // All the items, the tile unit one block ahead of the float work, whose
    // loads of a block's sums come an item after the tile store that wrote
    // them (a load right behind a tile store waits for it to reach L1).
    void run(const Item* items, int64_t n) const {
        issue(items[0].b);
        for (int64_t k = 0; k <= n; k++) {
            if (k < n) {
                store((int)(k & 1));
                if (k + 1 < n) issue(items[k + 1].b);
            }
            if (k > 0) {
                const Item& it = items[k - 1];
                float* sums = it.dest < G ? s.lanes + it.dest * TileSums::kSums : s.tails + (it.dest - G) * TileSums::kSums;
                scale_add((int)((k - 1) & 1), it.b, sums, it.first);
            }
        }
    }

    // y = hsum16's tree over the lanes (l + (l + 8), then + 4, + 2, + 1),
    // lanes without blocks adding zeros, plus the short tail's blocks in
    // order; rows past n_rows[j] and tokens past n_tok[i] are not written.
    void finish(const MatmulArgs& a, const int64_t* lane_groups, int tail_blocks, int64_t r, const int (&n_rows)[2],
                int64_t t0, const int (&n_tok)[2]) const {
        for (int i = 0; i < NT; i++)
            for (int j = 0; j < NR; j++) {
                const __mmask16 out_rows = first_lanes(n_rows[j]);
                for (int t = 0; t < n_tok[i]; t++) {
                    auto lane = [&](int l) {
                        return lane_groups[l] > 0 ? _mm512_load_ps(s.at(s.lanes + l * TileSums::kSums, i, j, t))
                                                  : _mm512_setzero_ps();
                    };
                    __m512 v[8];
                    for (int l = 0; l < 8; l++) v[l] = _mm512_add_ps(lane(l), lane(l + 8));
                    for (int l = 0; l < 4; l++) v[l] = _mm512_add_ps(v[l], v[l + 4]);
                    for (int l = 0; l < 2; l++) v[l] = _mm512_add_ps(v[l], v[l + 2]);
                    __m512 y = _mm512_add_ps(v[0], v[1]);
                    if (tail_blocks > 0) {
                        __m512 ts = _mm512_load_ps(s.at(s.tails, i, j, t));
                        for (int q = 1; q < tail_blocks; q++)
                            ts = _mm512_add_ps(ts, _mm512_load_ps(s.at(s.tails + q * TileSums::kSums, i, j, t)));
                        y = _mm512_add_ps(y, ts);
                    }
                    _mm512_mask_storeu_ps(a.y + (t0 + i * kTile + t) * a.y_stride + r + j * kTile, out_rows, y);
                }
            }
    }
};

thread_local Scratch amx_scratch;

template <WKind kKind>
void matmul_tiles(const MatmulArgs& a) {
    const int64_t nb = a.k / QK, ng = n_groups(nb, G);
    const int tail = group_blocks(nb, ng - 1, G);
    const bool short_tail = tail <= kAvx512ShortTail;
    // lane l's blocks: l + 16g over the full groups, and the last group's
    // when it has lane l and is not a short tail (then summed apart)
    int64_t lane_groups[G];
    for (int l = 0; l < G; l++) lane_groups[l] = (ng - 1) + (!short_tail && l < tail ? 1 : 0);

    // scratch: two row tiles' weights, the sums, the C tiles, the items
    const size_t w_bytes = (size_t)nb * (512 + 2 * 64);
    const size_t sums_bytes = (size_t)(G + kAvx512ShortTail + 2) * TileSums::kSums * 4;
    uint8_t* base = (uint8_t*)amx_scratch.get(2 * w_bytes + sums_bytes + (size_t)(nb + 1) * sizeof(Item));
    RowTile w[2];
    for (int j = 0; j < 2; j++) {
        w[j].b_tile = base + j * w_bytes;
        w[j].d = (float*)(w[j].b_tile + nb * 512);
        w[j].m = w[j].d + nb * 16;
    }
    TileSums sums;
    sums.lanes = (float*)(base + 2 * w_bytes);
    sums.tails = sums.lanes + G * TileSums::kSums;
    sums.c = (int32_t*)(sums.tails + kAvx512ShortTail * TileSums::kSums);
    Item* items = (Item*)(sums.c + 2 * TileSums::kSums);
    // the lines of a C tile past a short token tile are not stored, but the
    // float work reads them (and drops its sums): integers, never garbage
    std::memset(sums.c, 0, 2 * TileSums::kSums * sizeof(int32_t));
    int64_t n_items = 0;
    for (int l = 0; l < G; l++)
        for (int64_t g = 0; g < lane_groups[l]; g++) items[n_items++] = Item{(int32_t)(g * G + l), (int16_t)l, g == 0};
    if (short_tail)
        for (int q = 0; q < tail; q++) items[n_items++] = Item{(int32_t)((ng - 1) * G + q), (int16_t)(G + q), true};

    const size_t raw_at = avx512_q8a_packed_row_bytes(a.k);  // amx_pack_q8a's raw blocks
    int configured[2] = {-1, -1};
    for (int64_t r = a.r0; r < a.r1; r += 2 * kTile) {
        int n_rows[2];
        for (int j = 0; j < 2; j++) {
            const int64_t left = a.r1 - (r + j * kTile);
            n_rows[j] = (int)(left < 0 ? 0 : left < kTile ? left : kTile);
            if (n_rows[j] > 0) unpack_row_tile<kKind>(a, r + j * kTile, n_rows[j], nb, w[j]);
        }
        for (int64_t t0 = 0; t0 < a.n_tokens; t0 += 2 * kTile) {
            int n_tok[2];
            for (int i = 0; i < 2; i++) {
                const int64_t left = a.n_tokens - (t0 + i * kTile);
                n_tok[i] = (int)(left < 0 ? 0 : left < kTile ? left : kTile);
            }
            if (n_tok[0] != configured[0] || n_tok[1] != configured[1]) {
                configure_tiles(n_tok);
                configured[0] = n_tok[0], configured[1] = n_tok[1];
            }
            auto run = [&](auto tile) {
                for (int j = 0; j < 2; j++) tile.w[j] = &w[j];
                tile.x_stride = a.x_row_bytes;
                for (int i = 0; i < 2; i++) {
                    const int64_t first = t0 + i * kTile < a.n_tokens ? t0 + i * kTile : t0;
                    tile.x[i] = (const uint8_t*)a.x + first * a.x_row_bytes + raw_at;
                    for (int t = 0; t < kTile; t++)
                        tile.t_x[i][t] = (const uint8_t*)a.x + (t < n_tok[i] ? first + t : first) * a.x_row_bytes;
                }
                tile.s = sums;
                tile.run(items, n_items);
                tile.finish(a, lane_groups, short_tail ? tail : 0, r, n_rows, t0, n_tok);
            };
            const bool two_tok = n_tok[1] > 0, two_rows = n_rows[1] > 0;
            if (two_tok && two_rows) run(OutputTile<kKind, 2, 2>{});
            else if (two_tok) run(OutputTile<kKind, 2, 1>{});
            else if (two_rows) run(OutputTile<kKind, 1, 2>{});
            else run(OutputTile<kKind, 1, 1>{});
        }
    }
    _tile_release();
}

}  // namespace

// The packed activations: the AVX-512 set's (its paths read those), then
// the q8a blocks' 32 bytes each in order, which the A tiles load directly.
size_t amx_q8a_packed_row_bytes(int64_t k) { return avx512_q8a_packed_row_bytes(k) + (size_t)k; }

void amx_pack_q8a(const block_q8a* x, int64_t k, void* out) {
    avx512_pack_q8a(x, k, out);
    uint8_t* raw = (uint8_t*)out + avx512_q8a_packed_row_bytes(k);
    for (int64_t b = 0; b < k / QK; b++) std::memcpy(raw + b * QK, x[b].qs, QK);
}

namespace {
void amx_matmul_q8a(const MatmulArgs& a) {
    if (a.n_tokens >= kMinTokens && a.k > 0 && a.r1 > a.r0) {
        switch (a.w_type) {
            case GgmlType::Q4_0: return matmul_tiles<WKind::Q4_0>(a);
            case GgmlType::Q4_1: return matmul_tiles<WKind::Q4_1>(a);
            case GgmlType::Q8_0: return matmul_tiles<WKind::Q8_0>(a);
            default: break;
        }
    }
    avx512_matmul_q8a(a);
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
        t.matmul = matmul;
        t.q8a_packed_row_bytes = amx_q8a_packed_row_bytes;
        t.pack_q8a = amx_pack_q8a;
        return t;  // pack_q8a_weights is avx512's: its packed weights serve both
    }();
    return table;
}

}  // namespace hearth
