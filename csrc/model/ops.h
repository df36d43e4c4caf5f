// The small per-token operations of a transformer layer, as plain scalar
// functions: they cost little next to the matmuls (which are in kernels/).
#pragma once

#include <cstdint>
#include <vector>

namespace hearth {

// y = x / sqrt(mean(x²) + eps) * weight, over rows of n values.
void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps);

// x[i] += bias[i]
void add_bias(float* x, const float* bias, int64_t n);

// How RoPE pairs the dimensions of a head: adjacent pairs (2i, 2i+1) as in
// Meta's Llama and llama.cpp's "normal" mode (the converter permutes Q/K for
// that), or halves (i, i + d/2) as in GPT-NeoX, Hugging Face and Qwen2.
enum class RopeStyle { Normal, Neox };

// The rotation angles of one position: cos/sin of pos * base^(-2i/rope_dim)
// for i < rope_dim/2, computed once per token and shared by Q and K.
struct RopeAngles {
    std::vector<float> cos, sin;
    void compute(int64_t pos, int64_t rope_dim, const std::vector<double>& inv_freq);
};
// base^(-2i/rope_dim) for i < rope_dim/2: once per model.
std::vector<double> rope_inv_freq(float base, int64_t rope_dim);

// Rotates n_heads heads of head_dim values; the first rope_dim dimensions of
// each head are rotated (rope_dim = 2 * angles.cos.size()), the rest kept.
void rope(float* x, int64_t n_heads, int64_t head_dim, const RopeAngles& angles, RopeStyle style);


}  // namespace hearth
