// The AVX2 matmuls of q4_0, q4_1 and q8_0 weights with 8-bit activations,
// in row tiles (the layout and the arithmetic: row_tiles.h). Compiled with
// -mavx2 -mfma -mf16c like avx2.cpp; the avx2 set calls these from
// avx2_q8.cpp.
//
// A tile's 16 rows are two octets, the 8 lanes of a vector each. Without
// VNNI the products go through vpmaddubsw (unsigned x signed bytes, pairs
// summed into int16), and each block's integer dot product comes out exact,
// the same integer as the AVX-512 set's vpdpbusd gives:
// - q4_0 / q4_1: the nibbles are the unsigned operand; a block's 8
//   vpmaddubsw add up in int16 (a lane then holds 16 products, |sum| <=
//   16 * 15 * 127 = 30480 < 32767), one vpmaddwd makes the int32; q4_0
//   starts from -8 * sum(x);
// - q8_0: signed weights, so the sign moves to the activations (vpsignb)
//   and |w| is the unsigned operand (|-128| = 128 as a byte); a pair can
//   reach 2 * 128 * 127, so each vpmaddubsw is widened by its own vpmaddwd.
// The float work is row_tiles.h's, operation for operation, so these give
// the avx512 and amx sets' bits; and every token count runs the same code
// (R octets x T tokens at a time), so a result never depends on the batch.
#include <immintrin.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/row_tiles.h"

namespace hearth {
namespace {

constexpr int kOctet = 8;  // rows per vector: a tile of 16 is two octets

// The loads of one octet of a weight tile of n rows: lanes rows 8h.., zeros
// past the tile's last row.
struct Octet {
    int n, h, lanes;
    __m256i mask;  // the lanes that hold rows
    Octet() = default;
    Octet(int n_rows, int octet) : n(n_rows), h(octet), lanes(n_rows - kOctet * octet < kOctet ? n_rows - kOctet * octet : kOctet) {
        mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    // dword c of the rows' quants in block `at` (row_tiles.h: [c][n])
    __m256i quants(const uint8_t* at, int c) const {
        const uint8_t* p = at + (c * n + kOctet * h) * 4;
        if (lanes == kOctet) return _mm256_loadu_si256((const __m256i*)p);
        return _mm256_maskload_epi32((const int*)p, mask);
    }
    // the rows' fp16 scales at `scales` (n of them) as f32
    __m256 f16s(const uint8_t* scales) const {
        const uint8_t* p = scales + kOctet * h * 2;
        if (lanes == kOctet) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p));
        uint16_t v[kOctet] = {0};
        std::memcpy(v, p, (size_t)lanes * 2);
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)v));
    }
    template <WKind kKind>
    __m256 d(const uint8_t* at) const { return f16s(at + Traits<kKind>::kDwords * n * 4); }
    template <WKind kKind>
    __m256 m(const uint8_t* at) const { return f16s(at + Traits<kKind>::kDwords * n * 4 + 2 * n); }
};

inline __m256i broadcast_dword(const Token& t, const RawRow& raw, int64_t b, int c) {
    return _mm256_set1_epi32(t.qdword(raw, b, c));
}

// Octets h0 .. h0 + R - 1 of the weight tile at tile_r0 x T tokens, all
// blocks: acc[i][j] for octet h0 + i, token j.
template <WKind kKind, int R, int T>
void octets_x_tokens(const MatmulArgs& a, const RawRow& raw, const Token* tok, int64_t tile_r0, int n_rows, int h0,
                     __m256 (&acc)[R][T]) {
    using Tr = Traits<kKind>;
    const int64_t nb = a.k / QK;
    const __m256i ones = _mm256_set1_epi16(1);
    Octet octet[R];
    for (int i = 0; i < R; i++) octet[i] = Octet(n_rows, h0 + i);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) acc[i][j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t* at = tile_block<kKind>(a, tile_r0, n_rows, b);
        __m256i p[R][T];
        if constexpr (Tr::kDwords == 4) {
            const __m256i low4 = _mm256_set1_epi8(0x0f);
            __m256i s16[R][T];
            for (int c = 0; c < 4; c++)
                for (int i = 0; i < R; i++) {
                    const __m256i q = octet[i].quants(at, c);
                    const __m256i lo = _mm256_and_si256(q, low4);                         // elements 4c..
                    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);   // 16 + 4c..
                    for (int j = 0; j < T; j++) {
                        const __m256i prod = _mm256_add_epi16(_mm256_maddubs_epi16(lo, broadcast_dword(tok[j], raw, b, c)),
                                                              _mm256_maddubs_epi16(hi, broadcast_dword(tok[j], raw, b, c + 4)));
                        s16[i][j] = c == 0 ? prod : _mm256_add_epi16(s16[i][j], prod);
                    }
                }
            for (int j = 0; j < T; j++) {
                const __m256i start = _mm256_set1_epi32(-Tr::kOffset * tok[j].sum(raw, b));
                for (int i = 0; i < R; i++) p[i][j] = _mm256_add_epi32(_mm256_madd_epi16(s16[i][j], ones), start);
            }
        } else {
            for (int i = 0; i < R; i++)
                for (int j = 0; j < T; j++) p[i][j] = _mm256_setzero_si256();
            for (int c = 0; c < 8; c++)
                for (int i = 0; i < R; i++) {
                    const __m256i w = octet[i].quants(at, c), abs_w = _mm256_abs_epi8(w);
                    for (int j = 0; j < T; j++) {
                        const __m256i x = _mm256_sign_epi8(broadcast_dword(tok[j], raw, b, c), w);
                        p[i][j] = _mm256_add_epi32(p[i][j], _mm256_madd_epi16(_mm256_maddubs_epi16(abs_w, x), ones));
                    }
                }
        }
        for (int i = 0; i < R; i++) {
            const __m256 dw = octet[i].template d<kKind>(at);
            for (int j = 0; j < T; j++)
                acc[i][j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p[i][j]), _mm256_mul_ps(dw, _mm256_set1_ps(tok[j].d(raw, b))), acc[i][j]);
            if constexpr (Tr::kMin) {
                const __m256 mw = octet[i].template m<kKind>(at);
                for (int j = 0; j < T; j++) acc[i][j] = _mm256_fmadd_ps(mw, _mm256_set1_ps(tok[j].s(raw, b)), acc[i][j]);
            }
        }
    }
}

// Lanes [lo, hi) of octet h of the tile at tile_r0, for one token.
inline void store_octet(const MatmulArgs& a, int64_t token, int64_t tile_r0, int h, int lo, int hi, __m256 v) {
    float* y = a.y + token * a.y_stride + tile_r0 + kOctet * h;
    lo = lo > kOctet * h ? lo - kOctet * h : 0;
    hi = hi < kOctet * (h + 1) ? hi - kOctet * h : kOctet;
    if (lo == 0 && hi == kOctet) return _mm256_storeu_ps(y, v);
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i in = _mm256_and_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane),
                                        _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)));
    _mm256_maskstore_ps(y, in, v);
}

// Octets h0 .. h0 + R - 1 of the tile at tile_r0 x tokens [t0, t0 + T), stored.
template <WKind kKind, int R, int T>
void octets_and_store(const MatmulArgs& a, const RawRow& raw, int64_t tile_r0, int n_rows, int h0, int64_t t0) {
    Token tok[T];
    for (int j = 0; j < T; j++) tok[j].row = (const uint8_t*)a.x + (t0 + j) * a.x_row_bytes;
    __m256 acc[R][T];
    octets_x_tokens<kKind, R, T>(a, raw, tok, tile_r0, n_rows, h0, acc);
    const int lo = first_lane(a, tile_r0), hi = end_lane(a, tile_r0, n_rows);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < T; j++) store_octet(a, t0 + j, tile_r0, h0 + i, lo, hi, acc[i][j]);
}

// Tokens [t0, t1) against octets h0 .. h0 + R - 1: T at a time, then the
// rest together (a smaller T).
template <WKind kKind, int R, int T>
void tokens_against(const MatmulArgs& a, const RawRow& raw, int64_t tile_r0, int n_rows, int h0, int64_t t0, int64_t t1) {
    for (; t0 + T <= t1; t0 += T) octets_and_store<kKind, R, T>(a, raw, tile_r0, n_rows, h0, t0);
    if constexpr (T > 1)
        if (t0 < t1) tokens_against<kKind, R, T - 1>(a, raw, tile_r0, n_rows, h0, t0, t1);
}

// Up to this many tokens go through a tile's two octets together, block by
// block (each line of weights read once); more, an octet at a time against
// kTokens tokens (more products per register of weights). Measured on the
// Zen 4 VM (one thread, q4_1, 576 and 1,536 rows of 576 and 576 of 1,536,
// 512 tokens; bench/README.md, 2026-12-07 06:40), cycles per row, 16
// blocks and token: 3 at a time 25.0-25.8, 4 19.7-20.6, 5 and 6 20.2-22.5
// (every token against each tile); in chunks of 16 tokens, 4 18.3-18.7 and
// 6 18.6-18.9. Both octets against 3 tokens (not 1 octet against 3): 3
// tokens 18.4-19.2 against 24.5-26.4; against 4, 22.0-22.4 (registers
// short) against 18.2-18.8.
constexpr int kDecodeTokens = 3;
constexpr int kTokens = 4;
// Tokens taken together past every row tile of the matmul: their raw rows
// (about 1.4 k bytes each) stay in L1 at SmolLM2's k = 576, in L2 at
// larger k (chunks of 32: the same as 16).
constexpr int64_t kChunkTokens = 16;

template <WKind kKind>
void matmul_q(const MatmulArgs& a) {
    if (a.r1 <= a.r0 || a.n_tokens <= 0) return;
    const RawRow raw = RawRow::after_groups<kAvx2GroupBlocks>(a.k);
    const int64_t chunk = a.n_tokens <= kDecodeTokens ? kDecodeTokens : kChunkTokens;
    for (int64_t t0 = 0; t0 < a.n_tokens; t0 += chunk) {
        const int64_t t1 = std::min(a.n_tokens, t0 + chunk);
        for (int64_t tr = tile_of(a.r0); tr < a.r1; tr += kTileRows) {
            const int n = tile_rows(a, tr), lo = first_lane(a, tr), hi = end_lane(a, tr, n);
            // the octets with rows of [a.r0, a.r1)
            const int h0 = lo / kOctet, h1 = (hi + kOctet - 1) / kOctet;
            if (h1 - h0 == 2 && a.n_tokens <= kDecodeTokens) {
                tokens_against<kKind, 2, kDecodeTokens>(a, raw, tr, n, h0, t0, t1);
                continue;
            }
            for (int h = h0; h < h1; h++) tokens_against<kKind, 1, kTokens>(a, raw, tr, n, h, t0, t1);
        }
    }
}

}  // namespace

void avx2_rows_matmul_q8a(const MatmulArgs& a) {
    switch (a.w_type) {
        case GgmlType::Q4_0: return matmul_q<WKind::Q4_0>(a);
        case GgmlType::Q4_1: return matmul_q<WKind::Q4_1>(a);
        case GgmlType::Q8_0: return matmul_q<WKind::Q8_0>(a);
        default: return;
    }
}

}  // namespace hearth
