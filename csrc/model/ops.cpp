#include "model/ops.h"

#include <cmath>
#include <vector>

namespace hearth {

void rmsnorm(const float* x, const float* weight, float* y, int64_t n, float eps) {
    // in double: the mean of squares is the one reduction here that drifts
    // in f32; eight sums (i mod 8), which the compiler keeps in vectors,
    // instead of one chain of dependent adds
    constexpr int kSums = 8;
    double part[kSums] = {};
    int64_t i = 0;
    for (; i + kSums <= n; i += kSums)
        for (int j = 0; j < kSums; j++) part[j] += (double)x[i + j] * x[i + j];
    for (; i < n; i++) part[i % kSums] += (double)x[i] * x[i];
    double ss = 0.0;
    for (int j = 0; j < kSums; j++) ss += part[j];
    const float scale = (float)(1.0 / std::sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = (x[i] * scale) * weight[i];
}

void add_bias(float* x, const float* bias, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] += bias[i];
}

std::vector<double> rope_inv_freq(float base, int64_t rope_dim) {
    std::vector<double> inv(rope_dim / 2);
    for (int64_t i = 0; i < rope_dim / 2; i++) inv[i] = std::pow((double)base, -2.0 * (double)i / (double)rope_dim);
    return inv;
}

void RopeAngles::compute(int64_t pos, int64_t rope_dim, const std::vector<double>& inv_freq) {
    cos.resize(rope_dim / 2);
    sin.resize(rope_dim / 2);
    for (int64_t i = 0; i < rope_dim / 2; i++) {
        const double angle = (double)pos * inv_freq[i];  // in double: exact enough at any position
        cos[i] = (float)std::cos(angle);
        sin[i] = (float)std::sin(angle);
    }
}

void rope(float* x, int64_t n_heads, int64_t head_dim, const RopeAngles& angles, RopeStyle style) {
    const int64_t half = (int64_t)angles.cos.size();
    const float* c = angles.cos.data();
    const float* s = angles.sin.data();
    for (int64_t h = 0; h < n_heads; h++) {
        float* v = x + h * head_dim;
        for (int64_t i = 0; i < half; i++) {
            const int64_t a = style == RopeStyle::Normal ? 2 * i : i;
            const int64_t b = style == RopeStyle::Normal ? 2 * i + 1 : i + half;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * c[i] - x1 * s[i];
            v[b] = x0 * s[i] + x1 * c[i];
        }
    }
}

}  // namespace hearth
