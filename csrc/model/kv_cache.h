// The memory of the KV cache: a pool of fixed-size blocks, each holding
// kBlockTokens positions of every layer's keys and values (vLLM's
// PagedAttention layout). Which sequence owns which block is the engine's
// business (engine/block_pool.h, engine/kv_cache_manager.h); the forward pass
// reads and writes a sequence's positions through its block table.
//
// In memory, blocks go in extents of kExtentBlocks; inside an extent, each
// layer's keys of one head come first for all its blocks, then the values,
// then the next head:
//   [extent][layer][kv_head][k|v][block of the extent][slot][head_dim]
// so that attention, which reads one layer and head of a sequence's blocks,
// reads long runs of memory (blocks are handed out lowest first, so a
// sequence's blocks sit mostly side by side): with one block after another
// as a whole, each run was kBlockTokens vectors and decode 2,048 positions
// deep ran a third slower on SmolLM2. Memory becomes resident an extent at
// a time, as blocks are used.
//
// Inside a block, keys are dimension-major ([head_dim][slot]: one load gives
// a dimension of every position, see the attention kernels) and values
// position-major ([slot][head_dim]). The q8_0 type (llama.cpp's
// --cache-type-k/v q8_0) stores int8 quants, values in that order, keys a
// dword of 4 dimensions per slot ([head_dim / 4][slot][4]: the order of the
// integer dot products that score them), then an f16 scale per position and
// 32 dimensions (kernels.h, kv_q8_block_bytes): 17/32 of f16's bytes, as
// llama.cpp's q8_0 cache, which is what decode steps of many long sequences
// wait on.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "base/page_buffer.h"
#include "kernels/kernels.h"

namespace hearth {

enum class KVType { F32, F16, Q8_0 };
KVType parse_kv_type(const std::string& name);  // "f32" | "f16" | "q8_0", else a clear error
const char* kv_type_name(KVType t);

class KVCache {
public:
    static constexpr int64_t kBlockTokens = kBlockKeys;
    static constexpr int64_t kExtentBlocks = 64;

    // Room for n_blocks blocks of n_layers × n_kv_heads × head_dim keys and
    // values per position. The memory is not touched until used. q8_0
    // needs head_dim a multiple of 32, at most 1,024 (a clear error otherwise).
    KVCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KVType type, int64_t n_blocks);
    KVCache(const KVCache&) = delete;
    KVCache& operator=(const KVCache&) = delete;

    KVType type() const { return type_; }
    // Bytes of one head's keys (or values) in one block, and of one
    // position's key (or value) of one head, for a type.
    static size_t run_bytes(KVType type, int64_t head_dim);
    static double position_bytes(KVType type, int64_t head_dim) { return (double)run_bytes(type, head_dim) / kBlockTokens; }
    size_t run_bytes() const { return run_bytes_; }
    int64_t head_dim() const { return head_dim_; }
    int64_t n_blocks() const { return n_blocks_; }
    size_t block_bytes() const { return block_bytes_; }
    size_t total_bytes() const { return block_bytes_ * (size_t)n_blocks_; }

    // The keys (kv = 0) or values (kv = 1) of one head in one block of one
    // layer, run_bytes() of them: kBlockTokens × head_dim elements, keys
    // dimension-major (q8_0: a dword of 4 dimensions per slot), values
    // position-major; q8_0's scales after its quants.
    void* block_data(int32_t block, int64_t layer, int64_t kv_head, int kv) {
        return pages_.data() + offset(block, layer, kv_head, kv);
    }
    const void* block_data(int32_t block, int64_t layer, int64_t kv_head, int kv) const {
        return pages_.data() + offset(block, layer, kv_head, kv);
    }
    // One position's key and value (head_dim floats each) into slot
    // (< kBlockTokens) of a block, converted to the cache's type (q8_0:
    // quantized as GGUF's q8_0 is, each 32 values apart).
    void write(int32_t block, int64_t layer, int64_t kv_head, int64_t slot, const float* k, const float* v);
    // dst takes src's contents (copy on write of a shared block).
    void copy_block(int32_t src, int32_t dst);

private:
    size_t offset(int32_t block, int64_t layer, int64_t kv_head, int kv) const {
        // [extent][layer][kv_head][k|v][block of the extent][slot][head_dim];
        // the last extent holds what blocks are left
        const int64_t extent = block / kExtentBlocks, first = extent * kExtentBlocks;
        const int64_t blocks = std::min(kExtentBlocks, n_blocks_ - first);
        const int64_t run = ((layer * n_kv_heads_ + kv_head) * 2 + kv) * blocks + (block - first);
        return (size_t)(first * n_layers_ * n_kv_heads_ * 2 + run) * run_bytes_;
    }

    int64_t n_layers_, n_kv_heads_, head_dim_;
    KVType type_;
    int64_t n_blocks_;
    size_t run_bytes_;
    size_t block_bytes_;
    PageBuffer pages_;
};

}  // namespace hearth
