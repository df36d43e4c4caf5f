// The quantized block layouts, byte-exact with ggml's. Each block holds 32
// consecutive weights of a row; the scales are IEEE half (fp16 bits).
// ISA-neutral: plain structs, shared with every kernel file.
#pragma once

#include <cstdint>

namespace hearth {

constexpr int QK = 32;  // weights per block, for every type here

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
