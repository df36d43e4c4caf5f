// The KV cache's blocks as the engine hands them out (vLLM's BlockPool):
// a reference count per block, a free queue in least-recently-used order,
// and the prefix cache: a full block is known by the hash of its tokens and
// of the blocks before it, and stays in the pool after its last user is done
// (still in the free queue, evictable) until a request that begins the same
// way takes it again or a new allocation evicts it.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace hearth {

// The identity of a full block: its tokens and everything before them.
struct BlockKey {
    uint64_t hash = 0;    // of the parent's hash and the tokens
    uint64_t parent = 0;  // the previous block's hash (0 for the first block)
};
// The key of a block of tokens following the block whose hash is parent.
BlockKey block_key(uint64_t parent, const int32_t* tokens, int64_t n);

class BlockPool {
public:
    BlockPool(int32_t n_blocks, int64_t block_tokens, bool prefix_caching);

    int32_t n_blocks() const { return n_blocks_; }
    bool prefix_caching() const { return prefix_caching_; }
    // Blocks no sequence holds (cached ones included: they can be evicted).
    int32_t n_free() const { return n_free_; }
    int32_t n_used() const { return n_blocks_ - n_free_; }
    int32_t refcount(int32_t block) const { return ref_[block]; }

    // A block for new contents, the least recently freed first; a cached
    // block taken this way is evicted (forgets its key). Throws when none is free.
    int32_t take();
    // One more holder of a block (a fork, or a prefix-cache hit on a free
    // cached block, which leaves the free queue).
    void ref(int32_t block);
    // One holder less. At zero a cached block goes to the back of the free
    // queue, keeping its key (evicted last-freed last); any other to the front.
    void release(int32_t block);

    // The cached block holding exactly these tokens after parent, or -1.
    int32_t lookup(const BlockKey& key, const int32_t* tokens) const;
    // Records that block holds these (block_tokens) tokens after key.parent.
    // A key already cached in another block leaves this one uncached.
    void cache(int32_t block, const BlockKey& key, const int32_t* tokens);
    bool is_cached(int32_t block) const { return cached_[block] != 0; }

private:
    void unlink(int32_t block);     // out of the free queue
    void push_back(int32_t block);   // to the free queue's end (taken last)
    void push_front(int32_t block);  // to its front (taken first)
    void evict(int32_t block);

    int32_t n_blocks_;
    int64_t block_tokens_;
    bool prefix_caching_;
    std::vector<int32_t> ref_;
    // free queue: a doubly linked list over block ids (-1 ends it)
    std::vector<int32_t> prev_, next_;
    int32_t head_ = -1, tail_ = -1, n_free_ = 0;
    // prefix cache
    std::vector<uint8_t> cached_;
    std::vector<BlockKey> key_;
    std::vector<int32_t> tokens_;  // [block][block_tokens]: checked on lookup, so a hash collision is a miss
    std::unordered_map<uint64_t, int32_t> by_hash_;
};

}  // namespace hearth
