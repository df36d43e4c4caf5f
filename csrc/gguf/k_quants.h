// The K-quants (q2_K ... q6_K) decoded to one common form: every type is
//   value[e] = d * scale[e / 16] * (q[e] - offset) - dmin * min[e / 16]
// with unsigned q (2 to 6 bits), small integer scales and mins per 16
// weights (types with 32-weight sub-blocks repeat them), and the super-
// block's fp16 d and dmin. The dequantization, the scalar dot products and
// the SIMD sets' repacking at load all start from this form, so the bit
// layouts of ggml's blocks are spelled out once, here. ISA-neutral.
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"
#include "gguf/quant_blocks.h"

namespace hearth {

struct KBlock {
    float d = 0.0f, dmin = 0.0f;  // dmin is 0 for the types without a minimum
    int offset = 0;               // 32 for q6_K, 4 for q3_K, else 0
    int bits = 0;                 // bits of q
    int16_t scale[QK_K / 16];     // per 16 weights (q3_K's already minus 32)
    uint8_t min[QK_K / 16];       // per 16 weights (0 without a minimum)
    uint8_t q[QK_K];              // unsigned quants in weight order
};

inline bool is_k_quant(GgmlType t) {
    return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q4_K || t == GgmlType::Q5_K ||
           t == GgmlType::Q6_K;
}
// True for the K types whose scales cover 32 weights (q4_K, q5_K): those
// have a minimum per 32 weights, like q4_1.
inline bool k_scales_per_32(GgmlType t) { return t == GgmlType::Q4_K || t == GgmlType::Q5_K; }

// Decodes super-block i of a row of type t.
void decode_k_block(GgmlType t, const void* row, int64_t i, KBlock* out);

// Dequantizes n (a multiple of 256) weights of a row, as ggml does.
void dequantize_k_row(GgmlType t, const void* row, float* dst, int64_t n);

}  // namespace hearth
