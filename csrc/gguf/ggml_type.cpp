#include "gguf/ggml_type.h"

#include "base/error.h"
#include "base/fp16.h"
#include "gguf/k_quants.h"
#include "gguf/quant_blocks.h"

namespace hearth {

bool is_supported_type(uint32_t raw) {
    switch ((GgmlType)raw) {
        case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
        case GgmlType::Q8_0: case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
        case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
            return true;
    }
    return false;
}

std::string type_name(uint32_t raw) {
    // ggml's numbering, so that an unsupported type is named, not just numbered.
    static const char* names[] = {
        "f32", "f16", "q4_0", "q4_1", "q4_2", "q4_3", "q5_0", "q5_1", "q8_0", "q8_1",
        "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_K", "iq2_xxs", "iq2_xs", "iq3_xxs", "iq1_s",
        "iq4_nl", "iq3_s", "iq2_s", "iq4_xs", "i8", "i16", "i32", "i64", "f64", "iq1_m",
        "bf16", "q4_0_4_4", "q4_0_4_8", "q4_0_8_8", "tq1_0", "tq2_0", "iq4_nl_4_4", "iq4_nl_4_8",
        "iq4_nl_8_8", "mxfp4",
    };
    if (is_supported_type(raw)) return names[raw];
    std::string s = "type " + std::to_string(raw);
    if (raw < sizeof(names) / sizeof(names[0])) s += std::string(" (") + names[raw] + ")";
    return s;
}

int64_t type_block_elems(GgmlType t) { return is_k_quant(t) ? QK_K : is_quantized(t) ? QK : 1; }

size_t type_block_bytes(GgmlType t) {
    switch (t) {
        case GgmlType::F32: return 4;
        case GgmlType::F16: return 2;
        case GgmlType::BF16: return 2;
        case GgmlType::Q8_0: return sizeof(block_q8_0);
        case GgmlType::Q4_0: return sizeof(block_q4_0);
        case GgmlType::Q4_1: return sizeof(block_q4_1);
        case GgmlType::Q5_0: return sizeof(block_q5_0);
        case GgmlType::Q5_1: return sizeof(block_q5_1);
        case GgmlType::Q2_K: return sizeof(block_q2_K);
        case GgmlType::Q3_K: return sizeof(block_q3_K);
        case GgmlType::Q4_K: return sizeof(block_q4_K);
        case GgmlType::Q5_K: return sizeof(block_q5_K);
        case GgmlType::Q6_K: return sizeof(block_q6_K);
    }
    throw Error("unsupported tensor type " + type_name((uint32_t)t));
}

size_t row_bytes(GgmlType t, int64_t n) { return (size_t)(n / type_block_elems(t)) * type_block_bytes(t); }

bool is_quantized(GgmlType t) {
    return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q5_0 ||
           t == GgmlType::Q5_1 || is_k_quant(t);
}

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
    switch (t) {
        case GgmlType::F32: {
            const float* s = (const float*)src;
            for (int64_t i = 0; i < n; i++) dst[i] = s[i];
            return;
        }
        case GgmlType::F16: {
            const uint16_t* s = (const uint16_t*)src;
            for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
            return;
        }
        case GgmlType::BF16: {
            const uint16_t* s = (const uint16_t*)src;
            for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
            return;
        }
        case GgmlType::Q8_0: {
            const block_q8_0* b = (const block_q8_0*)src;
            for (int64_t i = 0; i < n / QK; i++) {
                const float d = f16_to_f32(b[i].d);
                for (int j = 0; j < QK; j++) dst[i * QK + j] = b[i].qs[j] * d;
            }
            return;
        }
        case GgmlType::Q4_0: {
            const block_q4_0* b = (const block_q4_0*)src;
            for (int64_t i = 0; i < n / QK; i++) {
                const float d = f16_to_f32(b[i].d);
                for (int j = 0; j < QK / 2; j++) {
                    dst[i * QK + j] = ((b[i].qs[j] & 0x0f) - 8) * d;
                    dst[i * QK + j + QK / 2] = ((b[i].qs[j] >> 4) - 8) * d;
                }
            }
            return;
        }
        case GgmlType::Q4_1: {
            const block_q4_1* b = (const block_q4_1*)src;
            for (int64_t i = 0; i < n / QK; i++) {
                const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
                for (int j = 0; j < QK / 2; j++) {
                    dst[i * QK + j] = (b[i].qs[j] & 0x0f) * d + m;
                    dst[i * QK + j + QK / 2] = (b[i].qs[j] >> 4) * d + m;
                }
            }
            return;
        }
        case GgmlType::Q5_0: {
            const block_q5_0* b = (const block_q5_0*)src;
            for (int64_t i = 0; i < n / QK; i++) {
                const float d = f16_to_f32(b[i].d);
                for (int j = 0; j < QK; j++) dst[i * QK + j] = (q5_value(b[i], j) - 16) * d;
            }
            return;
        }
        case GgmlType::Q5_1: {
            const block_q5_1* b = (const block_q5_1*)src;
            for (int64_t i = 0; i < n / QK; i++) {
                const float d = f16_to_f32(b[i].d), m = f16_to_f32(b[i].m);
                for (int j = 0; j < QK; j++) dst[i * QK + j] = q5_value(b[i], j) * d + m;
            }
            return;
        }
        case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
            return dequantize_k_row(t, src, dst, n);
    }
    throw Error("cannot dequantize tensor type " + type_name((uint32_t)t));
}

}  // namespace hearth
