// Quantizing f32 rows into ggml's block types by llama.cpp's reference
// algorithms (its quantizers without an importance matrix): the K-quants
// q2_K ... q6_K, and q5_0 / q5_1, which llama.cpp's K-quant mixes use for
// rows that are not a multiple of 256. hearth-convert writes its K-quant
// files with these, so that they are as good as llama-quantize's.
// (q8_0 and q4_0 are encoded in Python: python/hearthlm/convert/quants.py.)
#pragma once

#include <cstdint>

#include "gguf/ggml_type.h"

namespace hearth {

// True for the types quantize_row writes.
bool can_quantize_row(GgmlType t);

// Quantizes n weights (a multiple of the type's block size) into
// row_bytes(t, n) bytes at out.
void quantize_row(GgmlType t, const float* x, void* out, int64_t n);

}  // namespace hearth
