// The quantized block layouts, byte-exact with ggml's. Each block holds 32
// consecutive weights of a row; the scales are IEEE half (fp16 bits).
// ISA-neutral: plain structs, shared with every kernel file.
#pragma once

#include <cstdint>

namespace hearth {

constexpr int QK = 32;  // weights per block of the 32-weight types and of the activations

// q8_0: value = qs[i] * d
struct block_q8_0 {
    uint16_t d;
    int8_t qs[QK];
};
static_assert(sizeof(block_q8_0) == 34, "q8_0 block must be 34 bytes");

// q4_0: byte j holds element j (low nibble) and j+16 (high); value = (q - 8) * d
struct block_q4_0 {
    uint16_t d;
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q4_0) == 18, "q4_0 block must be 18 bytes");

// q4_1: same nibble order; value = q * d + m
struct block_q4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q4_1) == 20, "q4_1 block must be 20 bytes");

// q5_0: q4_0's nibbles plus a fifth bit per weight, bit j of qh for element
// j; value = (q - 16) * d
struct block_q5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q5_0) == 22, "q5_0 block must be 22 bytes");

// q5_1: q5_0's bits with q4_1's minimum; value = q * d + m
struct block_q5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[QK / 2];
};
static_assert(sizeof(block_q5_1) == 24, "q5_1 block must be 24 bytes");

// Element j (0..31) of a q5_0 / q5_1 block, unsigned (0..31).
template <class Block>
inline int q5_value(const Block& b, int j) {
    const uint32_t qh = (uint32_t)b.qh[0] | (uint32_t)b.qh[1] << 8 | (uint32_t)b.qh[2] << 16 | (uint32_t)b.qh[3] << 24;
    const int nib = j < 16 ? b.qs[j] & 0x0f : b.qs[j - 16] >> 4;
    return nib | (int)((qh >> j) & 1) << 4;
}

// ---- K-quants: super-blocks of 256 weights (QK_K), ggml's layouts. Each
// super-block has an fp16 scale d (and dmin for the types with a minimum)
// and small integer scales per sub-block of 16 or 32 weights; k_quants.h
// decodes them. value = d * scale * q - dmin * min, per type:
constexpr int QK_K = 256;

// q2_K: 2-bit q; scales[i] = scale (low nibble) | min << 4 per 16 weights.
struct block_q2_K {
    uint8_t scales[QK_K / 16];
    uint8_t qs[QK_K / 4];
    uint16_t d, dmin;
};
static_assert(sizeof(block_q2_K) == 84, "q2_K block must be 84 bytes");

// q3_K: 2 low bits in qs, the third in hmask; 6-bit scales (minus 32) per 16
// weights packed in 12 bytes; value = d * (scale - 32) * (q - 4).
struct block_q3_K {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;
};
static_assert(sizeof(block_q3_K) == 110, "q3_K block must be 110 bytes");

// q4_K: 4-bit q; 6-bit scale and min per 32 weights packed in 12 bytes.
struct block_q4_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q4_K) == 144, "q4_K block must be 144 bytes");

// q5_K: q4_K with a fifth bit per weight in qh.
struct block_q5_K {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};
static_assert(sizeof(block_q5_K) == 176, "q5_K block must be 176 bytes");

// q6_K: 4 low bits in ql, 2 high in qh; int8 scale per 16 weights;
// value = d * scale * (q - 32).
struct block_q6_K {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;
};
static_assert(sizeof(block_q6_K) == 210, "q6_K block must be 210 bytes");

// Activations quantized for the integer dot products (our own, in memory only,
// never in a file): 16-bit, one block per 32 activations. ggml quantizes
// activations to 8 bits; on llama.cpp's own Q4_1 SmolLM2 file that rounding
// is nearly all of its distance from transformers, and 16 bits remove it,
// for little more work (the kernels multiply int16 pairs: vpdpwssd,
// vpmaddwd).
//   value_i = qs[i] * d;  d = amax / 32767 (0 below kQ16aTiny);  qs rounded half
//   away from zero;
//   sum = sum_i qs[i], which q4_0's -8 offset and q4_1's minimum need
//   (ggml's q8_1 idea).
struct block_q16a {
    float d;
    int32_t sum;
    int16_t qs[QK];
};
static_assert(sizeof(block_q16a) == 72, "q16a block must be 72 bytes");

// 8-bit activations, the fast path (llama.cpp multiplies with 8-bit
// activations too: ggml's q8_0 / q8_1, with fp16 scales where these keep f32):
//   value_i = qs[i] * d;  d = amax / 127;  qs rounded half away from zero,
//   so |qs| <= 127 (the kernels rely on it: no -128);
//   sum = sum_i qs[i], as in q16a.
struct block_q8a {
    float d;
    int32_t sum;
    int8_t qs[QK];
};
static_assert(sizeof(block_q8a) == 40, "q8a block must be 40 bytes");

// Blocks whose amax is below this quantize to zeros: amax / 32767 would be a
// subnormal d, whose 1 / d overflows (no real activation comes near).
constexpr float kQ16aTiny = 1e-33f;  // the same bound for q8a

}  // namespace hearth
