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
// never in a file): like q8_0 but with an f32 scale, plus the sum of the 32
// quants, which q4_0's -8 offset and q4_1's minimum need (ggml's q8_1 idea).
// value = qs[i] * d; d = amax / 127; qs rounded half away from zero.
struct block_q8a {
    float d;
    int32_t sum;
    int8_t qs[QK];
};
static_assert(sizeof(block_q8a) == 40, "q8a block must be 40 bytes");

}  // namespace hearth
