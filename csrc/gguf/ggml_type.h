// Tensor element types, numbered as ggml numbers them in GGUF files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hearth {

enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    BF16 = 30,
};

// True for the types hearth can read (others are refused with a clear error).
bool is_supported_type(uint32_t raw_type);
// "f32", "q4_0", ... ; for unknown raw ids a descriptive "type 12 (q4_K)" string.
std::string type_name(uint32_t raw_type);
inline std::string type_name(GgmlType t) { return type_name((uint32_t)t); }
// Elements per block (1 for float types, 32 for q4_0 ... q8_0, 256 for
// the K-quants).
int64_t type_block_elems(GgmlType t);
// Bytes per block.
size_t type_block_bytes(GgmlType t);
// Bytes of a row of n elements (n must be a multiple of the block size).
size_t row_bytes(GgmlType t, int64_t n);
// True for the quantized types, whose matmuls take quantized activations.
bool is_quantized(GgmlType t);

// Dequantize n elements of one row to f32 (scalar reference; used for
// embedding lookups and tests).
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

}  // namespace hearth
