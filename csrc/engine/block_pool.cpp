#include "engine/block_pool.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"

namespace hearth {

namespace {

uint64_t mix(uint64_t h, uint64_t v) {
    // splitmix64 of the running hash and the next value: well spread, the
    // same in every process (no std::hash, which may differ between builds)
    uint64_t z = h ^ (v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2));
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

}  // namespace

BlockKey block_key(uint64_t parent, const int32_t* tokens, int64_t n) {
    uint64_t h = mix(0x6865617274686c6dull, parent);  // "hearthlm"
    for (int64_t i = 0; i < n; i++) h = mix(h, (uint32_t)tokens[i]);
    if (h == 0) h = 1;  // 0 is "no parent"
    return BlockKey{h, parent};
}

BlockPool::BlockPool(int32_t n_blocks, int64_t block_tokens, bool prefix_caching)
    : n_blocks_(n_blocks), block_tokens_(block_tokens), prefix_caching_(prefix_caching) {
    if (n_blocks < 1) throw Error("the KV cache needs at least one block, got " + std::to_string(n_blocks));
    ref_.assign(n_blocks, 0);
    prev_.assign(n_blocks, -1);
    next_.assign(n_blocks, -1);
    cached_.assign(n_blocks, 0);
    key_.assign(n_blocks, BlockKey{});
    if (prefix_caching) tokens_.assign((size_t)n_blocks * block_tokens, 0);
    for (int32_t b = 0; b < n_blocks; b++) push_back(b);  // low blocks first
}

void BlockPool::unlink(int32_t b) {
    if (prev_[b] >= 0) next_[prev_[b]] = next_[b];
    else head_ = next_[b];
    if (next_[b] >= 0) prev_[next_[b]] = prev_[b];
    else tail_ = prev_[b];
    prev_[b] = next_[b] = -1;
    n_free_--;
}

void BlockPool::push_back(int32_t b) {
    prev_[b] = tail_;
    next_[b] = -1;
    if (tail_ >= 0) next_[tail_] = b;
    else head_ = b;
    tail_ = b;
    n_free_++;
}

void BlockPool::push_front(int32_t b) {
    prev_[b] = -1;
    next_[b] = head_;
    if (head_ >= 0) prev_[head_] = b;
    else tail_ = b;
    head_ = b;
    n_free_++;
}

void BlockPool::evict(int32_t b) {
    if (!cached_[b]) return;
    auto it = by_hash_.find(key_[b].hash);
    if (it != by_hash_.end() && it->second == b) by_hash_.erase(it);
    cached_[b] = 0;
}

int32_t BlockPool::take() {
    HEARTH_CHECK(head_ >= 0, "the KV cache has no free block");  // callers check n_free() first
    const int32_t b = head_;
    unlink(b);
    evict(b);
    ref_[b] = 1;
    return b;
}

void BlockPool::ref(int32_t b) {
    if (ref_[b]++ == 0) unlink(b);
}

void BlockPool::release(int32_t b) {
    HEARTH_CHECK(ref_[b] > 0, "KV block " + std::to_string(b) + " released more often than taken");
    if (--ref_[b] > 0) return;
    // a cached block waits at the back, to be evicted last; one that holds
    // nothing anyone can find again is handed out first, before the pool's
    // untouched blocks, so resident memory grows only as far as it is used
    if (cached_[b]) push_back(b);
    else push_front(b);
}

int32_t BlockPool::lookup(const BlockKey& key, const int32_t* tokens) const {
    if (!prefix_caching_) return -1;
    auto it = by_hash_.find(key.hash);
    if (it == by_hash_.end()) return -1;
    const int32_t b = it->second;
    const bool same = key_[b].parent == key.parent &&
                      std::memcmp(&tokens_[(size_t)b * block_tokens_], tokens, sizeof(int32_t) * block_tokens_) == 0;
    return same ? b : -1;
}

void BlockPool::cache(int32_t b, const BlockKey& key, const int32_t* tokens) {
    if (!prefix_caching_ || cached_[b]) return;
    if (by_hash_.count(key.hash)) return;  // the same tokens are cached in another block already
    cached_[b] = 1;
    key_[b] = key;
    std::memcpy(&tokens_[(size_t)b * block_tokens_], tokens, sizeof(int32_t) * block_tokens_);
    by_hash_[key.hash] = b;
}

}  // namespace hearth
