#include "gguf/quantize.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/fp16.h"
#include "gguf/quant_blocks.h"

namespace hearth {
namespace {

// Below this the largest |x| of a group counts as zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// To nearest, ties to even, as ggml rounds (adding 1.5 * 2^23 in float):
// the quantizers' choices depend on it. |v| < 2^22.
inline int nearest_int(float v) {
    const float t = v + 12582912.0f;
    int32_t i;
    std::memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

inline int clamp(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// The value of largest magnitude, signed (the first on ties).
inline float signed_absmax(const float* x, int n) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < n; i++) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) amax = ax, max = x[i];
    }
    return max;
}

// The symmetric fits' start: the group's signed absmax in *max, or true
// (L all zeros, scale 0) for a group too small to fit.
inline bool silent_group(const float* x, int n, int8_t* L, float* max) {
    *max = signed_absmax(x, n);
    if (std::fabs(*max) >= kGroupMaxEps) return false;
    std::memset(L, 0, (size_t)n);
    return true;
}

// x[i] ~ scale * L[i] - neg_min with L in [0, nmax], for the types with a
// minimum (q2_K, q4_K, q5_K): starting from the range's own scale, a grid
// of inverse scales around nmax / (max - min) is tried, each quantization
// refit by weighted least squares (scale and minimum), and the one with the
// least weighted error (absolute or squared) is kept. Returns the scale.
float fit_with_min(int n, int nmax, const float* x, const float* w, uint8_t* L, float* neg_min, float rmin,
                   float rdelta, int nstep, bool abs_error) {
    float lo = x[0], hi = x[0], sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        std::memset(L, 0, (size_t)n);
        *neg_min = -lo;
        return 0.0f;
    }
    auto error_of = [&](const uint8_t* q, float scale, float min) {
        float e = 0.0f;
        for (int i = 0; i < n; i++) {
            const float diff = scale * q[i] + min - x[i];
            e += w[i] * (abs_error ? std::fabs(diff) : diff * diff);
        }
        return e;
    };
    float iscale = nmax / (hi - lo), scale = 1 / iscale;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
    float best = error_of(L, scale, lo);
    uint8_t trial[32];
    for (int step = 0; step <= nstep; step++) {
        iscale = (rmin + rdelta * step + nmax) / (hi - lo);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp(nearest_int(iscale * (x[i] - lo)), 0, nmax);
            trial[i] = (uint8_t)l;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (det <= 0) continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (this_min > 0) {  // the minimum may only go down: refit the scale alone
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        const float e = error_of(trial, this_scale, this_min);
        if (e < best) {
            std::memcpy(L, trial, (size_t)n);
            best = e;
            scale = this_scale;
            lo = this_min;
        }
    }
    *neg_min = -lo;
    return scale;
}

// x[i] ~ scale * (L[i] - nmax) with L - nmax in [-nmax, nmax - 1], weighted by
// x^2 (q6_K): the range's scale and 18 neighbours, each refit by least
// squares, the best kept. L gets the offset values.
float fit_symmetric(int n, int nmax, const float* x, int8_t* L) {
    float max;
    if (silent_group(x, n, L, &max)) return 0.0f;
    auto sums = [&](float iscale, float* sumlx, float* suml2) {
        *sumlx = *suml2 = 0;
        for (int i = 0; i < n; i++) {
            const int l = clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            *sumlx += w * x[i] * l;
            *suml2 += w * l * l;
        }
    };
    auto assign = [&](float iscale) {
        for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
    };
    float sumlx, suml2;
    float iscale = -nmax / max;
    sums(iscale, &sumlx, &suml2);
    assign(iscale);
    float scale = suml2 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int step = -9; step <= 9; step++) {
        if (step == 0) continue;
        iscale = -(nmax + 0.1f * step) / max;
        sums(iscale, &sumlx, &suml2);
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            assign(iscale);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// The same form for q3_K: from the range's scale, each value moved in turn to
// the level that most improves the weighted fit, up to five passes.
float fit_q3(int n, int nmax, const float* x, int8_t* L) {
    float max;
    if (silent_group(x, n, L, &max)) return 0.0f;
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        const int l = clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx <= 0) continue;
            float sl2 = suml2 - w * L[i] * L[i];
            const int l = clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (l == L[i]) continue;
            slx += w * x[i] * l;
            sl2 += w * l * l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)l;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
    return sumlx / suml2;
}

// 2-bit levels, four per byte: weight 128h + 32s + l at bits 2s of byte 32h + l.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
    for (int h = 0; h < QK_K; h += 128)
        for (int l = 0; l < 32; l++)
            qs[h / 4 + l] = (uint8_t)(L[h + l] | L[h + l + 32] << 2 | L[h + l + 64] << 4 | L[h + l + 96] << 6);
}

void quantize_q2_K(const float* x, block_q2_K& y) {
    uint8_t L[QK_K];
    float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = std::fabs(x[16 * j + l]);
        scales[j] = fit_with_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    std::memset(y.scales, 0, sizeof(y.scales));
    y.d = y.dmin = f32_to_f16(0.0f);
    if (max_scale > 0) {  // 4-bit scales and mins against d and dmin
        const float iscale = 15.0f / max_scale;
        for (int j = 0; j < 16; j++) y.scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
        y.d = f32_to_f16(max_scale / 15.0f);
    }
    if (max_min > 0) {
        const float iscale = 15.0f / max_min;
        for (int j = 0; j < 16; j++) y.scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
        y.dmin = f32_to_f16(max_min / 15.0f);
    }
    for (int j = 0; j < 16; j++) {  // the levels again, against the stored scales
        const float d = f16_to_f32(y.d) * (y.scales[j] & 0x0f);
        if (!d) continue;
        const float dm = f16_to_f32(y.dmin) * (y.scales[j] >> 4);
        for (int i = 0; i < 16; i++) L[16 * j + i] = (uint8_t)clamp(nearest_int((x[16 * j + i] + dm) / d), 0, 3);
    }
    pack_2bit(L, y.qs);
}

// q3_K's 6-bit scales: the low nibbles in bytes 0..7 (two per byte), the
// high two bits in bytes 8..11.
void put_scale_q3(uint8_t* s, int j, int v) {
    if (j < 8) s[j] = (uint8_t)(v & 0x0f);
    else s[j - 8] |= (uint8_t)((v & 0x0f) << 4);
    s[8 + j % 4] |= (uint8_t)((v >> 4) << (2 * (j / 4)));
}
int get_scale_q3(const uint8_t* s, int j) {
    const int low = j < 8 ? s[j] & 0x0f : s[j - 8] >> 4;
    return (low | ((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32;
}

void quantize_q3_K(const float* x, block_q3_K& y) {
    int8_t L[QK_K];
    float scales[16], max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
        if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
    }
    std::memset(y.scales, 0, sizeof(y.scales));
    y.d = f32_to_f16(0.0f);
    if (max_scale) {
        const float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) put_scale_q3(y.scales, j, clamp(nearest_int(iscale * scales[j]), -32, 31) + 32);
        y.d = f32_to_f16(1 / iscale);
    }
    for (int j = 0; j < 16; j++) {
        const float d = f16_to_f32(y.d) * get_scale_q3(y.scales, j);
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clamp(nearest_int(x[16 * j + i] / d), -4, 3) + 4);
    }
    // the third bit of weight j is bit j / 32 of hmask[j % 32]
    std::memset(y.hmask, 0, sizeof(y.hmask));
    uint8_t low[QK_K];
    for (int j = 0; j < QK_K; j++) {
        if (L[j] > 3) y.hmask[j % 32] |= (uint8_t)(1 << (j / 32));
        low[j] = (uint8_t)(L[j] > 3 ? L[j] - 4 : L[j]);
    }
    pack_2bit(low, y.qs);
}

// q4_K / q5_K: 6-bit scale and min of sub-block j, packed in 12 bytes.
void put_scale_min_k4(uint8_t* s, int j, int sc, int m) {
    if (j < 4) {
        s[j] = (uint8_t)sc;
        s[j + 4] = (uint8_t)m;
    } else {
        s[j + 4] = (uint8_t)((sc & 0x0f) | (m & 0x0f) << 4);
        s[j - 4] |= (uint8_t)((sc >> 4) << 6);
        s[j] |= (uint8_t)((m >> 4) << 6);
    }
}
void get_scale_min_k4(const uint8_t* s, int j, int* sc, int* m) {
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// The per-32 part of q4_K and q5_K: levels L (0..nmax), scales, d and dmin.
template <class Block>
void quantize_k4_levels(const float* x, Block& y, int nmax, float rmin, int nstep, uint8_t* L) {
    float scales[8], mins[8], w[32], max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = fit_with_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
    std::memset(y.scales, 0, sizeof(y.scales));
    for (int j = 0; j < 8; j++) {
        const int ls = std::min(63, (int)(uint8_t)nearest_int(inv_scale * scales[j]));
        const int lm = std::min(63, (int)(uint8_t)nearest_int(inv_min * mins[j]));
        put_scale_min_k4(y.scales, j, ls, lm);
    }
    y.d = f32_to_f16(max_scale / 63.0f);
    y.dmin = f32_to_f16(max_min / 63.0f);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        get_scale_min_k4(y.scales, j, &sc, &m);
        const float d = f16_to_f32(y.d) * sc;
        if (!d) continue;
        const float dm = f16_to_f32(y.dmin) * m;
        for (int i = 0; i < 32; i++) L[32 * j + i] = (uint8_t)clamp(nearest_int((x[32 * j + i] + dm) / d), 0, nmax);
    }
}

void quantize_q4_K(const float* x, block_q4_K& y) {
    uint8_t L[QK_K];
    quantize_k4_levels(x, y, 15, -1.0f, 20, L);
    // weight 64p + 32h + l: nibble h of byte 32p + l
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++) y.qs[32 * p + l] = (uint8_t)(L[64 * p + l] | L[64 * p + 32 + l] << 4);
}

void quantize_q5_K(const float* x, block_q5_K& y) {
    uint8_t L[QK_K];
    quantize_k4_levels(x, y, 31, -0.5f, 15, L);
    // q4_K's nibbles; the fifth bit of weight e is bit e / 32 of qh[e % 32]
    std::memset(y.qh, 0, sizeof(y.qh));
    for (int e = 0; e < QK_K; e++)
        if (L[e] > 15) y.qh[e % 32] |= (uint8_t)(1 << (e / 32));
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            y.qs[32 * p + l] = (uint8_t)((L[64 * p + l] & 0x0f) | (L[64 * p + 32 + l] & 0x0f) << 4);
}

void quantize_q6_K(const float* x, block_q6_K& y) {
    int8_t L[QK_K];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_symmetric(16, 32, x + 16 * j, L + 16 * j);
        if (std::fabs(scales[j]) > max_abs) max_abs = std::fabs(scales[j]), max_scale = scales[j];
    }
    if (max_abs < kGroupMaxEps) {
        std::memset(&y, 0, sizeof(y));
        return;
    }
    const float iscale = -128.0f / max_scale;
    y.d = f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; j++) y.scales[j] = (int8_t)std::min(127, nearest_int(iscale * scales[j]));
    for (int j = 0; j < 16; j++) {
        const float d = f16_to_f32(y.d) * y.scales[j];
        if (!d) continue;
        for (int i = 0; i < 16; i++) L[16 * j + i] = (int8_t)(clamp(nearest_int(x[16 * j + i] / d), -32, 31) + 32);
    }
    // weight 128n + 32t + l: nibble t / 2 of ql[64n + 32(t % 2) + l], high
    // bits 2t of qh[32n + l]
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 32; l++) {
            uint8_t q[4];
            for (int t = 0; t < 4; t++) q[t] = (uint8_t)L[128 * n + 32 * t + l];
            y.ql[64 * n + l] = (uint8_t)((q[0] & 0x0f) | (q[2] & 0x0f) << 4);
            y.ql[64 * n + 32 + l] = (uint8_t)((q[1] & 0x0f) | (q[3] & 0x0f) << 4);
            y.qh[32 * n + l] = (uint8_t)((q[0] >> 4) | (q[1] >> 4) << 2 | (q[2] >> 4) << 4 | (q[3] >> 4) << 6);
        }
}

// q5_0 / q5_1 (ggml's reference): q5_0 scales by the signed absmax / -16,
// q5_1 spans [min, max] in 31 steps.
void quantize_q5_0(const float* x, block_q5_0& y) {
    const float d = signed_absmax(x, QK) / -16.0f, id = d ? 1.0f / d : 0.0f;
    y.d = f32_to_f16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        const int q0 = std::min(31, (int)(int8_t)(x[j] * id + 16.5f));
        const int q1 = std::min(31, (int)(int8_t)(x[QK / 2 + j] * id + 16.5f));
        y.qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + QK / 2);
    }
    std::memcpy(y.qh, &qh, 4);
}

void quantize_q5_1(const float* x, block_q5_1& y) {
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int j = 0; j < QK; j++) lo = std::min(lo, x[j]), hi = std::max(hi, x[j]);
    const float d = (hi - lo) / 31.0f, id = d ? 1.0f / d : 0.0f;
    y.d = f32_to_f16(d);
    y.m = f32_to_f16(lo);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        const int q0 = (uint8_t)((x[j] - lo) * id + 0.5f);
        const int q1 = (uint8_t)((x[QK / 2 + j] - lo) * id + 0.5f);
        y.qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        qh |= (uint32_t)(q0 >> 4 & 1) << j | (uint32_t)(q1 >> 4 & 1) << (j + QK / 2);
    }
    std::memcpy(y.qh, &qh, 4);
}

template <class Block, void (*encode)(const float*, Block&)>
void blocks(const float* x, void* out, int64_t n, int per_block) {
    Block* y = (Block*)out;
    for (int64_t b = 0; b < n / per_block; b++) encode(x + b * per_block, y[b]);
}

}  // namespace

bool can_quantize_row(GgmlType t) {
    switch (t) {
        case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
        case GgmlType::Q5_0: case GgmlType::Q5_1:
            return true;
        default:
            return false;
    }
}

void quantize_row(GgmlType t, const float* x, void* out, int64_t n) {
    HEARTH_CHECK(n % type_block_elems(t) == 0, "quantize_row: " + std::to_string(n) + " weights are not whole " +
                                                   type_name(t) + " blocks");
    switch (t) {
        case GgmlType::Q2_K: return blocks<block_q2_K, quantize_q2_K>(x, out, n, QK_K);
        case GgmlType::Q3_K: return blocks<block_q3_K, quantize_q3_K>(x, out, n, QK_K);
        case GgmlType::Q4_K: return blocks<block_q4_K, quantize_q4_K>(x, out, n, QK_K);
        case GgmlType::Q5_K: return blocks<block_q5_K, quantize_q5_K>(x, out, n, QK_K);
        case GgmlType::Q6_K: return blocks<block_q6_K, quantize_q6_K>(x, out, n, QK_K);
        case GgmlType::Q5_0: return blocks<block_q5_0, quantize_q5_0>(x, out, n, QK);
        case GgmlType::Q5_1: return blocks<block_q5_1, quantize_q5_1>(x, out, n, QK);
        default: throw Error("quantize_row: hearth does not write " + type_name(t));
    }
}

}  // namespace hearth
