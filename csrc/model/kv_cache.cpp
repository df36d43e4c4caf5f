#include "model/kv_cache.h"

#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/fp16.h"

namespace hearth {

KVType parse_kv_type(const std::string& name) {
    if (name == "f32") return KVType::F32;
    if (name == "f16") return KVType::F16;
    if (name == "q8_0") return KVType::Q8_0;
    throw Error("kv_type must be 'f16', 'f32' or 'q8_0', got '" + name + "'");
}

const char* kv_type_name(KVType t) {
    switch (t) {
        case KVType::F32: return "f32";
        case KVType::F16: return "f16";
        case KVType::Q8_0: return "q8_0";
    }
    return "?";
}

size_t KVCache::run_bytes(KVType type, int64_t head_dim) {
    switch (type) {
        case KVType::F32: return (size_t)(kBlockTokens * head_dim) * 4;
        case KVType::F16: return (size_t)(kBlockTokens * head_dim) * 2;
        case KVType::Q8_0: return kv_q8_block_bytes(head_dim);
    }
    return 0;
}

KVCache::KVCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KVType type, int64_t n_blocks)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), type_(type), n_blocks_(n_blocks) {
    if (n_blocks < 1) throw Error("the KV cache needs at least one block, got " + std::to_string(n_blocks));
    if (type == KVType::Q8_0 && (head_dim < 1 || head_dim % kKVQuantGroup != 0 || head_dim > kMaxQ8Groups * kKVQuantGroup))
        throw Error("kv_type q8_0 needs a head size that is a multiple of 32, at most 1024; this model's is " +
                    std::to_string(head_dim) + ": use kv_type f16");
    run_bytes_ = run_bytes(type, head_dim);
    block_bytes_ = (size_t)(n_layers * 2 * n_kv_heads) * run_bytes_;
    // pages touched only when used, an extent at a time. Plain 4 KiB pages,
    // not huge ones: on the Xeon VM (bench/README.md, 2026-12-06) each fresh
    // huge page cost ~12 ms on first touch (the hypervisor backs it then), so
    // the 64-prompt job's 225 MiB pool spent 1.7-3 s of its 21.7-23.1 s faulting;
    // with plain pages that went away, for 0-5 % slower decode steps once
    // resident (the extent layout keeps a head's blocks in few pages)
    pages_ = PageBuffer(total_bytes(), "the KV cache", false);
}

void KVCache::write(int32_t block, int64_t layer, int64_t kv_head, int64_t slot, const float* k, const float* v) {
    const int64_t hd = head_dim_, B = kBlockTokens;
    char* kb = (char*)block_data(block, layer, kv_head, 0);
    char* vb = (char*)block_data(block, layer, kv_head, 1);
    if (type_ == KVType::F32) {
        for (int64_t d = 0; d < hd; d++) ((float*)kb)[d * B + slot] = k[d];
        std::memcpy((float*)vb + slot * hd, v, sizeof(float) * hd);
        return;
    }
    const KernelTable& kt = kernels();
    if (type_ == KVType::Q8_0) {  // the layout of kernels.h's kv_q8_block_bytes
        thread_local std::vector<int8_t> quants;
        quants.resize(hd);
        const int64_t groups = hd / kKVQuantGroup;
        // the scales are f16 values already (quantize_kv_q8_0 rounds them
        // so): stored as f16, exactly
        uint16_t* key_scale = kv_q8_scales(kb, hd);
        uint16_t* value_scale = kv_q8_scales(vb, hd) + slot * groups;
        float d[kMaxQ8Groups];
        kt.quantize_kv_q8_0(k, hd, quants.data(), d);
        for (int64_t i = 0; i < hd; i++) ((int8_t*)kb)[kv_q8_key_index(i, slot)] = quants[i];
        for (int64_t c = 0; c < groups; c++) key_scale[c * B + slot] = f32_to_f16(d[c]);
        kt.quantize_kv_q8_0(v, hd, (int8_t*)vb + slot * hd, d);
        for (int64_t c = 0; c < groups; c++) value_scale[c] = f32_to_f16(d[c]);
        return;
    }
    thread_local std::vector<uint16_t> key;
    key.resize(hd);
    kt.f32_to_f16_row(k, key.data(), hd);
    for (int64_t d = 0; d < hd; d++) ((uint16_t*)kb)[d * B + slot] = key[d];
    kt.f32_to_f16_row(v, (uint16_t*)vb + slot * hd, hd);
}

void KVCache::copy_block(int32_t src, int32_t dst) {
    HEARTH_CHECK(src >= 0 && src < n_blocks_ && dst >= 0 && dst < n_blocks_, "KV cache: copy of a block out of range");
    const size_t run = run_bytes_;
    for (int64_t l = 0; l < n_layers_; l++)
        for (int64_t h = 0; h < n_kv_heads_; h++)
            for (int kv = 0; kv < 2; kv++) std::memcpy(block_data(dst, l, h, kv), block_data(src, l, h, kv), run);
}

}  // namespace hearth
