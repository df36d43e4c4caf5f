// The reference kernels: plain C++, no intrinsics. Every SIMD path is tested
// against these. Compiled with the baseline flags like the rest of the core.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "base/fp16.h"
#include "gguf/k_quants.h"
#include "kernels/kernels.h"
#include "kernels/sampler_exp.h"

namespace hearth {
namespace {

// q16a (kMax 32767) and q8a (kMax 127): the same rounding, another width.
template <typename Block, typename Q, int kMax>
void quantize_activations(const float* x, Block* y, int64_t k) {
    for (int64_t b = 0; b < k / QK; b++) {
        const float* xb = x + b * QK;
        float amax = 0.0f;
        for (int i = 0; i < QK; i++) amax = std::fmax(amax, std::fabs(xb[i]));
        const float d = amax < kQ16aTiny ? 0.0f : amax / (float)kMax;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        int32_t sum = 0;
        for (int i = 0; i < QK; i++) {
            const int q = (int)std::round(xb[i] * id);  // half away from zero
            y[b].qs[i] = (Q)q;
            sum += q;
        }
        y[b].d = d;
        y[b].sum = sum;
    }
}

void quantize_q16a(const float* x, block_q16a* y, int64_t k) { quantize_activations<block_q16a, int16_t, 32767>(x, y, k); }
void quantize_q8a(const float* x, block_q8a* y, int64_t k) { quantize_activations<block_q8a, int8_t, 127>(x, y, k); }

// The reference reads q8a rows as they are.
size_t q8a_packed_row_bytes(int64_t k) { return (size_t)(k / QK) * sizeof(block_q8a); }
void pack_q8a(const block_q8a* x, int64_t k, void* out, bool) { std::memcpy(out, x, q8a_packed_row_bytes(k)); }

// One (row, token) output for each weight type.
float dot_row_f32(const float* w, const float* x, int64_t k) {
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += w[i] * x[i];
    return acc;
}

float dot_row_f16(const uint16_t* w, const float* x, int64_t k) {
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += f16_to_f32(w[i]) * x[i];
    return acc;
}

float dot_row_bf16(const uint16_t* w, const float* x, int64_t k) {
    float acc = 0.0f;
    for (int64_t i = 0; i < k; i++) acc += bf16_to_f32(w[i]) * x[i];
    return acc;
}

// The quantized rows, for either activation block (q16a or q8a: the same
// fields, another width of qs).
template <typename X>
float dot_row_q8_0(const block_q8_0* w, const X* x, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int i = 0; i < QK; i++) isum += (int32_t)w[b].qs[i] * x[b].qs[i];
        acc += (float)isum * (f16_to_f32(w[b].d) * x[b].d);
    }
    return acc;
}

template <typename X>
float dot_row_q4_0(const block_q4_0* w, const X* x, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QK / 2; j++) {
            isum += (int32_t)(w[b].qs[j] & 0x0f) * x[b].qs[j];
            isum += (int32_t)(w[b].qs[j] >> 4) * x[b].qs[j + QK / 2];
        }
        isum -= 8 * x[b].sum;  // the stored nibbles are q + 8
        acc += (float)isum * (f16_to_f32(w[b].d) * x[b].d);
    }
    return acc;
}

template <typename X>
float dot_row_q4_1(const block_q4_1* w, const X* x, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QK / 2; j++) {
            isum += (int32_t)(w[b].qs[j] & 0x0f) * x[b].qs[j];
            isum += (int32_t)(w[b].qs[j] >> 4) * x[b].qs[j + QK / 2];
        }
        // sum_i (q_i d + m) * xq_i dx = d dx sum(q xq) + m dx sum(xq)
        acc += (float)isum * (f16_to_f32(w[b].d) * x[b].d) +
               f16_to_f32(w[b].m) * (x[b].d * (float)x[b].sum);
    }
    return acc;
}

// q5_0 (offset 16) and q5_1 (minimum m), as q4_0 and q4_1.
template <typename X, class Block>
float dot_row_q5(const Block* w, const X* x, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QK; j++) isum += (int32_t)q5_value(w[b], j) * x[b].qs[j];
        if constexpr (std::is_same_v<Block, block_q5_0>) {
            isum -= 16 * x[b].sum;
            acc += (float)isum * (f16_to_f32(w[b].d) * x[b].d);
        } else {
            acc += (float)isum * (f16_to_f32(w[b].d) * x[b].d) + f16_to_f32(w[b].m) * (x[b].d * (float)x[b].sum);
        }
    }
    return acc;
}

// A K-quant row (nb32 activation blocks, 8 per super-block), from the
// common decoded form: per 16 weights, scale * (sum q x - offset * sum x),
// and the minimum's min * sum x, both exact integers (64-bit: q16a's
// activations reach 2^15), then scaled by d and dmin once per 32.
template <typename X>
float dot_row_k(GgmlType t, const void* w, const X* x, int64_t nb32) {
    float acc = 0.0f;
    KBlock kb;
    for (int64_t b = 0; b < nb32; b++) {
        if (b % 8 == 0) decode_k_block(t, w, b / 8, &kb);
        int64_t p = 0, m = 0;
        for (int h = 0; h < 2; h++) {
            const int s = (int)(b % 8) * 2 + h;  // the 16-weight sub-block
            int64_t qx = 0, xs = 0;
            for (int i = 16 * h; i < 16 * h + 16; i++) {
                qx += (int64_t)kb.q[(b % 8) * 32 + i] * x[b].qs[i];
                xs += x[b].qs[i];
            }
            p += kb.scale[s] * (qx - kb.offset * xs);
            m += kb.min[s] * xs;
        }
        acc += (float)p * (kb.d * x[b].d) - (float)m * (kb.dmin * x[b].d);
    }
    return acc;
}

template <typename X>
void matmul_rows_k(const MatmulArgs& a) {
    for (int64_t t = 0; t < a.n_tokens; t++) {
        const X* x = (const X*)((const char*)a.x + t * a.x_row_bytes);
        for (int64_t r = a.r0; r < a.r1; r++)
            a.y[t * a.y_stride + r] = dot_row_k(a.w_type, (const char*)a.w + r * a.w_row_bytes, x, a.k / QK);
    }
}

template <typename W, typename X, float (*dot)(const W*, const X*, int64_t)>
void matmul_rows(const MatmulArgs& a, int64_t n_inner) {
    for (int64_t t = 0; t < a.n_tokens; t++) {
        const X* x = (const X*)((const char*)a.x + t * a.x_row_bytes);
        for (int64_t r = a.r0; r < a.r1; r++) {
            const W* w = (const W*)((const char*)a.w + r * a.w_row_bytes);
            a.y[t * a.y_stride + r] = dot(w, x, n_inner);
        }
    }
}

void matmul(const MatmulArgs& a) {
    const int64_t nb = a.k / QK;
    switch (a.w_type) {
        case GgmlType::F32: return matmul_rows<float, float, dot_row_f32>(a, a.k);
        case GgmlType::F16: return matmul_rows<uint16_t, float, dot_row_f16>(a, a.k);
        case GgmlType::BF16: return matmul_rows<uint16_t, float, dot_row_bf16>(a, a.k);
        default: break;
    }
    if (is_k_quant(a.w_type)) {
        if (a.x_type == Activations::Q8) return matmul_rows_k<block_q8a>(a);
        return matmul_rows_k<block_q16a>(a);
    }
    if (a.x_type == Activations::Q8) {
        switch (a.w_type) {
            case GgmlType::Q8_0: return matmul_rows<block_q8_0, block_q8a, dot_row_q8_0<block_q8a>>(a, nb);
            case GgmlType::Q4_0: return matmul_rows<block_q4_0, block_q8a, dot_row_q4_0<block_q8a>>(a, nb);
            case GgmlType::Q4_1: return matmul_rows<block_q4_1, block_q8a, dot_row_q4_1<block_q8a>>(a, nb);
            case GgmlType::Q5_0: return matmul_rows<block_q5_0, block_q8a, dot_row_q5<block_q8a, block_q5_0>>(a, nb);
            case GgmlType::Q5_1: return matmul_rows<block_q5_1, block_q8a, dot_row_q5<block_q8a, block_q5_1>>(a, nb);
            default: return;
        }
    }
    switch (a.w_type) {
        case GgmlType::Q8_0: return matmul_rows<block_q8_0, block_q16a, dot_row_q8_0<block_q16a>>(a, nb);
        case GgmlType::Q4_0: return matmul_rows<block_q4_0, block_q16a, dot_row_q4_0<block_q16a>>(a, nb);
        case GgmlType::Q4_1: return matmul_rows<block_q4_1, block_q16a, dot_row_q4_1<block_q16a>>(a, nb);
        case GgmlType::Q5_0: return matmul_rows<block_q5_0, block_q16a, dot_row_q5<block_q16a, block_q5_0>>(a, nb);
        case GgmlType::Q5_1: return matmul_rows<block_q5_1, block_q16a, dot_row_q5<block_q16a, block_q5_1>>(a, nb);
        default: return;
    }
}

void axpy_f32(float alpha, const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * x[i];
}

void axpy_f16(float alpha, const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += alpha * f16_to_f32(x[i]);
}

void f32_to_f16_row(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f32_to_f16(x[i]);
}

// The four interleaved parts of a query's scores against one block (d mod 4).
template <typename K>
void scores(const float* q, const K* kt, int64_t hd, float* out, float (*load)(K)) {
    for (int64_t j = 0; j < kBlockKeys; j++) {
        float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int64_t d = 0; d < hd; d++) part[d % 4] += load(kt[d * kBlockKeys + j]) * q[d];
        out[j] = (part[0] + part[1]) + (part[2] + part[3]);
    }
}

void scores_f32(const float* q, const float* kt, int64_t hd, float* out) {
    scores<float>(q, kt, hd, out, [](float x) { return x; });
}

void scores_f16(const float* q, const uint16_t* kt, int64_t hd, float* out) {
    scores<uint16_t>(q, kt, hd, out, [](uint16_t h) { return f16_to_f32(h); });
}

// A group of queries, one after the other (the set has no shared-load form).
void scores_group_f32(const float* const* q, int nq, const float* kt, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) scores_f32(q[m], kt, hd, out[m]);
}

void scores_group_f16(const float* const* q, int nq, const uint16_t* kt, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) scores_f16(q[m], kt, hd, out[m]);
}

void f16_to_f32_row(const uint16_t* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = f16_to_f32(x[i]);
}

void accumulate_f32(const float* w, const float* v, int64_t n, int64_t hd, float* out) {
    for (int64_t j = 0; j < n; j++) axpy_f32(w[j], v + j * hd, out, hd);
}

void accumulate_f16(const float* w, const uint16_t* v, int64_t n, int64_t hd, float* out) {
    for (int64_t j = 0; j < n; j++) axpy_f16(w[j], v + j * hd, out, hd);
}

void accumulate_group_f32(const float* const* w, int nq, const float* v, int64_t n, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) accumulate_f32(w[m], v, n, hd, out[m]);
}

void accumulate_group_f16(const float* const* w, int nq, const uint16_t* v, int64_t n, int64_t hd, float* const* out) {
    for (int m = 0; m < nq; m++) accumulate_f16(w[m], v, n, hd, out[m]);
}

// The q8_0 cache: a block's values, quants times their scales (exact in f32).
void dequantize_values_q8(const void* block, int64_t n, int64_t hd, float* out) {
    const int8_t* x = (const int8_t*)block;
    const uint16_t* scale = kv_q8_scales(block, hd);
    const int64_t groups = hd / kKVQuantGroup;
    for (int64_t j = 0; j < n; j++)
        for (int64_t i = 0; i < hd; i++)
            out[j * hd + i] = (float)x[j * hd + i] * f16_to_f32(scale[j * groups + i / kKVQuantGroup]);
}

void scores_group_q8(const QueryQ8* q, int nq, const void* kt, int64_t hd, float* const* out) {
    const int8_t* x = (const int8_t*)kt;
    const uint16_t* scale = kv_q8_scales(kt, hd);
    for (int m = 0; m < nq; m++)
        for (int64_t j = 0; j < kBlockKeys; j++) {
            float acc = 0.0f;
            for (int64_t c = 0; c < hd / kKVQuantGroup; c++) {
                int32_t dot = 0;
                for (int64_t d = c * kKVQuantGroup; d < (c + 1) * kKVQuantGroup; d++)
                    dot += (int32_t)x[kv_q8_key_index(d, j)] * q[m].q[d];
                acc = std::fma((float)dot, f16_to_f32(scale[c * kBlockKeys + j]) * q[m].d[c], acc);
            }
            out[m][j] = acc;
        }
}

void accumulate_group_q8(const float* const* w, int nq, const void* v, int64_t n, int64_t hd, float* const* out) {
    std::vector<float> values(n * hd);
    dequantize_values_q8(v, n, hd, values.data());
    accumulate_group_f32(w, nq, values.data(), n, hd, out);
}

void quantize_kv_q8_0(const float* x, int64_t n, int8_t* q, float* d) {
    for (int64_t g = 0; g < n; g += kKVQuantGroup) {
        const float* xg = x + g;
        int8_t* qg = q + g;
        float amax = 0.0f;
        bool broken = false;  // a NaN or inf: no branch per value (this runs for every key, value and query)
        for (int i = 0; i < kKVQuantGroup; i++) {
            const float a = std::fabs(xg[i]);
            amax = std::max(amax, a);
            broken |= !(a <= FLT_MAX);
        }
        // a broken model: the whole group dequantizes to NaN (an f16 cache
        // would keep its other values; attention's output is NaN either way)
        if (broken) {
            bool nan = false;
            for (int i = 0; i < kKVQuantGroup; i++) nan |= xg[i] != xg[i];
            d[g / kKVQuantGroup] = nan ? NAN : INFINITY;
            std::memset(qg, 0, kKVQuantGroup);
            continue;
        }
        const float dg = amax / 127.0f;
        float id = dg != 0.0f ? 1.0f / dg : 0.0f;
        if (!(id <= FLT_MAX)) id = 0.0f;  // a group below ~4e-37: 1 / d overflows (and d rounds to f16 0)
        d[g / kKVQuantGroup] = f16_to_f32(f32_to_f16(dg));
        for (int i = 0; i < kKVQuantGroup; i++) {
            // roundf (halves away from zero) of |v| <= 127, without its call
            // or a branch: truncate, then step away from zero when half or
            // more was cut off
            const float v = xg[i] * id;
            int t = (int)v;
            const float cut = v - (float)t;
            t += (int)(cut >= 0.5f) - (int)(cut <= -0.5f);
            qg[i] = (int8_t)std::clamp(t, -127, 127);
        }
    }
}

void scaled_softmax(float* x, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = std::exp(x[i] - mx);
        sum += x[i];
    }
    const float inv = 1.0f / sum;
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

void silu_mul(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
}

void exp_shifted(const float* x, int64_t n, float shift, float* y) {
    for (int64_t i = 0; i < n; i++) y[i] = sampler_exp_one(x[i], shift);
}

void exp_shifted_f64(const float* x, int64_t n, float shift, double* y) {
    for (int64_t i = 0; i < n; i++) y[i] = sampler_exp64_one(x[i], shift);
}

}  // namespace

const KernelTable& scalar_kernels() {
    static const KernelTable table = {
        "scalar", matmul, quantize_q16a, quantize_q8a, q8a_packed_row_bytes, pack_q8a, nullptr, axpy_f32, axpy_f16, f32_to_f16_row,
        scores_f32, scores_f16, scores_group_f32, scores_group_f16, accumulate_f32, accumulate_f16,
        accumulate_group_f32, accumulate_group_f16, f16_to_f32_row, dequantize_values_q8, scores_group_q8, accumulate_group_q8,
        quantize_kv_q8_0, scaled_softmax, silu_mul, exp_shifted, exp_shifted_f64,
    };
    return table;
}

}  // namespace hearth
