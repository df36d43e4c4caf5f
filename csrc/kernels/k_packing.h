// How the SIMD sets lay out K-quant rows for the 8-bit-activation matmuls
// (the Q8 path): repacked once at load from the common decoded form
// (gguf/k_quants.h) into the lane layout of group_tiling.h, one int32 lane
// per 32 weights, so that the K-quants run through the same tiles as q4_1.
// No SIMD here; like group_tiling.h it lives in an anonymous namespace.
//
// A packed group of n lanes (n = 8 per super-block; a row's last group may
// be narrower than G) holds, one after another:
//   low planes:  kLow dwords per lane, each an array of n dwords:
//     4-bit types (q4_K, q5_K, q6_K): dword c of a lane holds weights
//       4c..4c+3 in its low nibbles and 16+4c..16+4c+3 in its high ones
//       (q4_0's layout: XGroup::q[c] and q[4 + c]);
//     2-bit types (q2_K, q3_K): dword A holds in byte i the low two bits of
//       weights 4c+i at bits 2c for c = 0..3, dword B the same for c = 4..7;
//   high planes: kHigh dwords per lane: q5_K / q3_K one dword whose byte i
//     holds bit 4 / bit 2 of weight 4c+i at bit c (c = 0..7); q6_K two,
//     bits 4-5 of the weights laid out as a 2-bit plane;
//   scales: per lane one u8 (q4_K, q5_K: per 32 weights) or two bytes, the
//     16-weight halves (q6_K int8, q3_K int8 already minus 32, q2_K the
//     file's byte scale | min << 4);
//   mins: q4_K / q5_K one u8 per lane;
//   d (and dmin) as fp16, one per super-block of the group.
// A row is whole groups of G lanes and a narrower last group; every super-
// block takes the same bytes, so a row's size does not depend on G.
#pragma once

#include <cstdint>
#include <cstring>

#include "gguf/k_quants.h"

namespace hearth {
namespace {

struct KLayout {
    int low, high;     // dwords per lane in the low and high planes
    int scale, min;    // bytes per lane
    int halves;        // 1: the scales are per 16 weights
    int n_f16;         // d, or d and dmin
    int high_bit;      // the bit the 1-bit high plane holds (q5_K 4, q3_K 2)
    // bytes of one super-block (8 lanes)
    constexpr size_t superblock_bytes() const { return (size_t)8 * (4 * (low + high) + scale + min) + 2 * n_f16; }
};

constexpr KLayout k_layout(GgmlType t) {
    switch (t) {
        case GgmlType::Q2_K: return {2, 0, 2, 0, 1, 2, 0};
        case GgmlType::Q3_K: return {2, 1, 2, 0, 1, 1, 2};
        case GgmlType::Q4_K: return {4, 0, 1, 1, 0, 2, 0};
        case GgmlType::Q5_K: return {4, 1, 1, 1, 0, 2, 4};
        default: return {4, 2, 2, 0, 1, 1, 0};  // Q6_K
    }
}

inline size_t k_packed_row_bytes(GgmlType t, int64_t k) { return (size_t)(k / QK_K) * k_layout(t).superblock_bytes(); }

// A packed K row as the kernels read it.
template <GgmlType kType>
struct KPackedRow {
    static constexpr KLayout L = k_layout(kType);
    const uint8_t* row;
    explicit KPackedRow(const void* r) : row((const uint8_t*)r) {}
    // group g (n lanes) of a row of groups of G lanes
    const uint8_t* group(int64_t g, int G) const { return row + g * (G / 8) * L.superblock_bytes(); }
    const uint8_t* low(int64_t g, int G, int c, int n) const { return group(g, G) + (size_t)c * n * 4; }
    const uint8_t* high(int64_t g, int G, int c, int n) const { return low(g, G, L.low + c, n); }
    const uint8_t* scales(int64_t g, int G, int n) const { return low(g, G, L.low + L.high, n); }
    const uint8_t* mins(int64_t g, int G, int n) const { return scales(g, G, n) + (size_t)L.scale * n; }
    const uint16_t* d(int64_t g, int G, int n) const { return (const uint16_t*)(mins(g, G, n) + (size_t)L.min * n); }
    const uint16_t* dmin(int64_t g, int G, int n) const { return d(g, G, n) + n / 8; }
};

// One lane's planes from 32 unsigned quants.
inline void pack_lane_planes(const KLayout& L, const uint8_t* u, uint32_t* low, uint32_t* high) {
    uint8_t b[4][4] = {};  // [dword][byte]
    if (L.low == 4) {
        for (int c = 0; c < 4; c++)
            for (int i = 0; i < 4; i++) b[c][i] = (uint8_t)((u[4 * c + i] & 0x0f) | (u[16 + 4 * c + i] & 0x0f) << 4);
    } else {
        for (int c = 0; c < 8; c++)
            for (int i = 0; i < 4; i++) b[c / 4][i] |= (uint8_t)((u[4 * c + i] & 3) << (2 * (c % 4)));
    }
    std::memcpy(low, b, (size_t)L.low * 4);
    uint8_t h[2][4] = {};
    if (L.high == 1) {
        for (int c = 0; c < 8; c++)
            for (int i = 0; i < 4; i++) h[0][i] |= (uint8_t)(((u[4 * c + i] >> L.high_bit) & 1) << c);
    } else if (L.high == 2) {
        for (int c = 0; c < 8; c++)
            for (int i = 0; i < 4; i++) h[c / 4][i] |= (uint8_t)(((u[4 * c + i] >> 4) & 3) << (2 * (c % 4)));
    }
    std::memcpy(high, h, (size_t)L.high * 4);
}

// Packs one row of k weights (k % 256 == 0) in groups of G lanes.
template <int G>
void pack_k_row(GgmlType t, const void* src, int64_t k, uint8_t* out) {
    const KLayout L = k_layout(t);
    const int64_t nsb = k / QK_K, sb_per_group = G / 8;
    KBlock kb;
    for (int64_t g0 = 0; g0 < nsb; g0 += sb_per_group) {
        const int n_sb = (int)(nsb - g0 < sb_per_group ? nsb - g0 : sb_per_group), n = 8 * n_sb;
        uint8_t* grp = out + g0 * L.superblock_bytes();
        uint8_t* scales = grp + (size_t)4 * (L.low + L.high) * n;
        uint8_t* mins = scales + (size_t)L.scale * n;
        uint16_t* d = (uint16_t*)(mins + (size_t)L.min * n);
        for (int s = 0; s < n_sb; s++) {
            decode_k_block(t, src, g0 + s, &kb);
            // the file's fp16 bits, not kb's floats: the packed row keeps them exact
            const uint8_t* blk = (const uint8_t*)src + (g0 + s) * (int64_t)type_block_bytes(t);
            switch (t) {
                case GgmlType::Q2_K:
                    d[s] = ((const block_q2_K*)blk)->d, d[n_sb + s] = ((const block_q2_K*)blk)->dmin;
                    break;
                case GgmlType::Q3_K: d[s] = ((const block_q3_K*)blk)->d; break;
                case GgmlType::Q4_K:
                    d[s] = ((const block_q4_K*)blk)->d, d[n_sb + s] = ((const block_q4_K*)blk)->dmin;
                    break;
                case GgmlType::Q5_K:
                    d[s] = ((const block_q5_K*)blk)->d, d[n_sb + s] = ((const block_q5_K*)blk)->dmin;
                    break;
                default: d[s] = ((const block_q6_K*)blk)->d; break;
            }
            for (int j = 0; j < 8; j++) {
                const int lane = 8 * s + j;
                uint32_t lw[4], hw[2];
                pack_lane_planes(L, kb.q + 32 * j, lw, hw);
                for (int c = 0; c < L.low; c++) std::memcpy(grp + ((size_t)c * n + lane) * 4, &lw[c], 4);
                for (int c = 0; c < L.high; c++) std::memcpy(grp + ((size_t)(L.low + c) * n + lane) * 4, &hw[c], 4);
                if (!L.halves) {
                    scales[lane] = (uint8_t)kb.scale[2 * j];
                    mins[lane] = kb.min[2 * j];
                } else if (t == GgmlType::Q2_K) {
                    for (int h = 0; h < 2; h++) scales[2 * lane + h] = blk[2 * j + h];
                } else {
                    for (int h = 0; h < 2; h++) scales[2 * lane + h] = (uint8_t)(int8_t)kb.scale[2 * j + h];
                }
            }
        }
    }
}

}  // namespace
}  // namespace hearth
