// The key/value cache, in fixed-size blocks of kBlockTokens positions taken
// from one pool, with a block table per sequence (vLLM's PagedAttention
// layout). Blocks are reference-counted: fork() makes a sequence that shares
// another's blocks (beams with a common prefix), and a shared block is copied
// only when one of its owners writes into it (copy on write).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hearth {

enum class KVType { F32, F16 };
KVType parse_kv_type(const std::string& name);  // "f32" | "f16", else a clear error
const char* kv_type_name(KVType t);

class KVCache {
public:
    static constexpr int64_t kBlockTokens = 16;

    // Room for n_blocks blocks; each holds kBlockTokens positions of every
    // layer's keys and values (n_kv_heads × head_dim each).
    KVCache(int64_t n_layers, int64_t n_kv_heads, int64_t head_dim, KVType type, int64_t n_blocks);

    KVType type() const { return type_; }
    size_t elem_bytes() const { return type_ == KVType::F32 ? 4 : 2; }
    int64_t head_dim() const { return head_dim_; }
    size_t total_bytes() const { return bytes_; }
    int64_t free_blocks() const { return (int64_t)free_.size(); }
    int64_t used_blocks() const { return n_blocks_ - (int64_t)free_.size(); }
    size_t block_bytes() const { return block_bytes_; }
    bool alive(int seq) const { return seq >= 0 && seq < (int)seqs_.size() && seqs_[seq].alive; }

    // Sequences are small integer handles.
    int new_sequence();
    int fork(int seq);            // a new sequence sharing all of seq's blocks
    void free_sequence(int seq);  // returns its blocks (those no one else holds)
    void clear(int seq);          // empties it, keeps the handle
    int64_t length(int seq) const { return seqs_[seq].n_tokens; }

    // Makes room for positions [length, length + n) and sets the length. The
    // blocks that these positions fall in become private to seq (copy on
    // write). Throws when the pool is exhausted.
    void grow(int seq, int64_t n);
    // Drops positions from new_len on (a rewind).
    void truncate(int seq, int64_t new_len);

    // Address of the key / value vector of (layer, position, kv head).
    void* key(int seq, int64_t layer, int64_t pos, int64_t kv_head) {
        return ptr(seq, layer, pos, kv_head, 0);
    }
    void* value(int seq, int64_t layer, int64_t pos, int64_t kv_head) {
        return ptr(seq, layer, pos, kv_head, 1);
    }
    // Within one block, consecutive positions of one head are head_dim apart.
    // Blocks: for attention loops that walk a sequence block by block.
    const std::vector<int32_t>& blocks(int seq) const { return seqs_[seq].blocks; }
    void* block_data(int32_t block, int64_t layer, int64_t kv_head, int kv) {
        return base_ + offset(block, layer, kv_head, 0, kv);
    }

private:
    struct Sequence {
        std::vector<int32_t> blocks;
        int64_t n_tokens = 0;
        bool alive = false;
    };
    size_t offset(int32_t block, int64_t layer, int64_t kv_head, int64_t slot, int kv) const {
        // [block][layer][k|v][kv_head][slot][head_dim]
        const int64_t idx = (((((int64_t)block * n_layers_ + layer) * 2 + kv) * n_kv_heads_ + kv_head) * kBlockTokens + slot) * head_dim_;
        return (size_t)idx * elem_bytes();
    }
    void* ptr(int seq, int64_t layer, int64_t pos, int64_t kv_head, int kv) {
        const int32_t block = seqs_[seq].blocks[pos / kBlockTokens];
        return base_ + offset(block, layer, kv_head, pos % kBlockTokens, kv);
    }
    int32_t take_block();
    void release_block(int32_t block);

    int64_t n_layers_, n_kv_heads_, head_dim_;
    KVType type_;
    int64_t n_blocks_;
    size_t block_bytes_;
    size_t bytes_;
    std::unique_ptr<uint8_t[]> storage_;  // not zeroed: pages are touched only when used
    uint8_t* base_;
    std::vector<int32_t> free_;
    std::vector<int32_t> refcount_;
    std::vector<Sequence> seqs_;
};

}  // namespace hearth
