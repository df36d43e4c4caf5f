#include "gguf/k_quants.h"

#include "base/error.h"
#include "base/fp16.h"

namespace hearth {
namespace {

// q4_K / q5_K: the 6-bit scale and min of sub-block j (of 8) from 12 bytes.
void scale_min_k4(int j, const uint8_t* s, int* scale, int* min) {
    if (j < 4) {
        *scale = s[j] & 63;
        *min = s[j + 4] & 63;
    } else {
        *scale = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        *min = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void decode_q2_K(const block_q2_K& b, KBlock& o) {
    o.d = f16_to_f32(b.d), o.dmin = f16_to_f32(b.dmin), o.offset = 0, o.bits = 2;
    for (int i = 0; i < 16; i++) o.scale[i] = b.scales[i] & 0x0f, o.min[i] = b.scales[i] >> 4;
    // weight 128n + 32j + l: bits 2j of byte 32n + l
    for (int e = 0; e < QK_K; e++) o.q[e] = (b.qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
}

void decode_q3_K(const block_q3_K& b, KBlock& o) {
    o.d = f16_to_f32(b.d), o.dmin = 0.0f, o.offset = 4, o.bits = 3;
    for (int i = 0; i < 16; i++) {
        const int low = (i < 8 ? b.scales[i] : b.scales[i - 8] >> 4) & 0x0f;
        const int high = (b.scales[8 + i % 4] >> (2 * (i / 4))) & 3;
        o.scale[i] = (int16_t)((low | high << 4) - 32);
        o.min[i] = 0;
    }
    // the low two bits as q2_K's; the third is bit e / 32 of hmask[e % 32]
    for (int e = 0; e < QK_K; e++) {
        const int low = (b.qs[32 * (e / 128) + e % 32] >> (2 * (e % 128 / 32))) & 3;
        o.q[e] = (uint8_t)(low | ((b.hmask[e % 32] >> (e / 32)) & 1) << 2);
    }
}

template <class Block>
void decode_scales_k4(const Block& b, KBlock& o) {
    o.d = f16_to_f32(b.d), o.dmin = f16_to_f32(b.dmin), o.offset = 0;
    for (int j = 0; j < 8; j++) {
        int sc, m;
        scale_min_k4(j, b.scales, &sc, &m);
        o.scale[2 * j] = o.scale[2 * j + 1] = (int16_t)sc;
        o.min[2 * j] = o.min[2 * j + 1] = (uint8_t)m;
    }
}

// q4_K / q5_K nibbles: weight 64p + 32h + l is nibble h of byte 32p + l
inline int nibble_k4(const uint8_t* qs, int e) { return (qs[32 * (e / 64) + e % 32] >> (4 * (e % 64 / 32))) & 0x0f; }

void decode_q4_K(const block_q4_K& b, KBlock& o) {
    decode_scales_k4(b, o);
    o.bits = 4;
    for (int e = 0; e < QK_K; e++) o.q[e] = (uint8_t)nibble_k4(b.qs, e);
}

void decode_q5_K(const block_q5_K& b, KBlock& o) {
    decode_scales_k4(b, o);
    o.bits = 5;
    // the fifth bit is bit e / 32 of qh[e % 32]
    for (int e = 0; e < QK_K; e++) o.q[e] = (uint8_t)(nibble_k4(b.qs, e) | ((b.qh[e % 32] >> (e / 32)) & 1) << 4);
}

void decode_q6_K(const block_q6_K& b, KBlock& o) {
    o.d = f16_to_f32(b.d), o.dmin = 0.0f, o.offset = 32, o.bits = 6;
    for (int i = 0; i < 16; i++) o.scale[i] = b.scales[i], o.min[i] = 0;
    // weight 128n + 32t + l: nibble t / 2 of ql[64n + 32(t % 2) + l], high
    // bits 2t of qh[32n + l]
    for (int e = 0; e < QK_K; e++) {
        const int n = e / 128, t = e % 128 / 32, l = e % 32;
        const int low = (b.ql[64 * n + 32 * (t % 2) + l] >> (4 * (t / 2))) & 0x0f;
        const int high = (b.qh[32 * n + l] >> (2 * t)) & 3;
        o.q[e] = (uint8_t)(low | high << 4);
    }
}

}  // namespace

void decode_k_block(GgmlType t, const void* row, int64_t i, KBlock* out) {
    switch (t) {
        case GgmlType::Q2_K: return decode_q2_K(((const block_q2_K*)row)[i], *out);
        case GgmlType::Q3_K: return decode_q3_K(((const block_q3_K*)row)[i], *out);
        case GgmlType::Q4_K: return decode_q4_K(((const block_q4_K*)row)[i], *out);
        case GgmlType::Q5_K: return decode_q5_K(((const block_q5_K*)row)[i], *out);
        case GgmlType::Q6_K: return decode_q6_K(((const block_q6_K*)row)[i], *out);
        default: throw Error("decode_k_block: " + type_name(t) + " is not a K-quant");
    }
}

void dequantize_k_row(GgmlType t, const void* row, float* dst, int64_t n) {
    KBlock b;
    for (int64_t i = 0; i < n / QK_K; i++) {
        decode_k_block(t, row, i, &b);
        for (int e = 0; e < QK_K; e++) {
            // (d * scale) is exact in f32; one rounding for the product and
            // one for the minimum, in ggml's order
            const float dl = b.d * (float)b.scale[e / 16], ml = b.dmin * (float)b.min[e / 16];
            dst[i * QK_K + e] = dl * (float)(b.q[e] - b.offset) - ml;
        }
    }
}

}  // namespace hearth
