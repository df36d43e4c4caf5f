// The small per-token operations of a transformer layer, as plain scalar
// functions: they cost little next to the matmuls (which are in kernels/).
#pragma once

#include <cstdint>

namespace hearth {

// y = x / sqrt(mean(x²) + eps) * weight, over rows of n values.
void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps);

// x[i] += bias[i]
void add_bias(float* x, const float* bias, int64_t n);

// gate[i] = silu(gate[i]) * up[i]
void silu_mul(float* gate, const float* up, int64_t n);

// How RoPE pairs the dimensions of a head: adjacent pairs (2i, 2i+1) as in
// Meta's Llama and llama.cpp's "normal" mode (the converter permutes Q/K for
// that), or halves (i, i + d/2) as in GPT-NeoX, Hugging Face and Qwen2.
enum class RopeStyle { Normal, Neox };

// Rotates n_heads heads of head_dim values at position pos; the first
// rope_dim dimensions of each head are rotated, the rest kept.
void rope(float* x, int64_t n_heads, int64_t head_dim, int64_t rope_dim, int64_t pos, float base, RopeStyle style);

// In place: x = softmax(x) over n values.
void softmax(float* x, int64_t n);

}  // namespace hearth
