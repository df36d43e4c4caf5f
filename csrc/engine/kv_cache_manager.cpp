#include "engine/kv_cache_manager.h"

#include <algorithm>
#include <cstddef>

#include "base/error.h"

namespace hearth {

KVCacheManager::KVCacheManager(KVCache& cache, bool prefix_caching)
    : cache_(cache), pool_((int32_t)cache.n_blocks(), kBlockTokens, prefix_caching) {}

void KVCacheManager::check(int seq) const {
    HEARTH_CHECK(seq >= 0 && seq < (int)seqs_.size() && seqs_[seq].alive,
                 "KV cache: sequence " + std::to_string(seq) + " does not exist");
}

int KVCacheManager::new_sequence() {
    for (size_t i = 0; i < seqs_.size(); i++) {
        if (!seqs_[i].alive) {
            seqs_[i] = Sequence();
            seqs_[i].alive = true;
            return (int)i;
        }
    }
    seqs_.emplace_back();
    seqs_.back().alive = true;
    return (int)seqs_.size() - 1;
}

int KVCacheManager::fork(int seq) {
    check(seq);
    const int child = new_sequence();
    seqs_[child].blocks = seqs_[seq].blocks;
    seqs_[child].hashes = seqs_[seq].hashes;
    for (int32_t b : seqs_[child].blocks) pool_.ref(b);
    return child;
}

void KVCacheManager::free(int seq) {
    check(seq);
    Sequence& s = seqs_[seq];
    for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) pool_.release(*it);
    s = Sequence();
}

int64_t KVCacheManager::take_cached_prefix(int seq, const int32_t* tokens, int64_t max_tokens) {
    check(seq);
    Sequence& s = seqs_[seq];
    HEARTH_CHECK(s.blocks.empty(), "KV cache: a cached prefix goes into an empty sequence");
    queries_ += max_tokens;
    uint64_t parent = 0;
    while ((int64_t)(s.blocks.size() + 1) * kBlockTokens <= max_tokens) {
        const int32_t* block_tokens = tokens + s.blocks.size() * kBlockTokens;
        const BlockKey key = block_key(parent, block_tokens, kBlockTokens);
        const int32_t b = pool_.lookup(key, block_tokens);
        if (b < 0) break;
        pool_.ref(b);
        s.blocks.push_back(b);
        s.hashes.push_back(key.hash);
        parent = key.hash;
    }
    const int64_t n = (int64_t)s.blocks.size() * kBlockTokens;
    hits_ += n;
    return n;
}

int64_t KVCacheManager::blocks_needed(int seq, int64_t first_write, int64_t n_tokens) const {
    check(seq);
    const Sequence& s = seqs_[seq];
    const int64_t have = (int64_t)s.blocks.size();
    const int64_t want = (n_tokens + kBlockTokens - 1) / kBlockTokens;
    int64_t need = want > have ? want - have : 0;
    for (int64_t i = first_write / kBlockTokens; i < have && i < want; i++) {
        if (pool_.refcount(s.blocks[i]) > 1) need++;  // copy on write
    }
    return need;
}

bool KVCacheManager::allocate(int seq, int64_t first_write, int64_t n_tokens) {
    if (blocks_needed(seq, first_write, n_tokens) > pool_.n_free()) return false;
    Sequence& s = seqs_[seq];
    const int64_t want = (n_tokens + kBlockTokens - 1) / kBlockTokens;
    for (int64_t i = first_write / kBlockTokens; i < (int64_t)s.blocks.size() && i < want; i++) {
        const int32_t b = s.blocks[i];
        if (pool_.refcount(b) > 1) {
            const int32_t copy = pool_.take();
            cache_.copy_block(b, copy);
            pool_.release(b);
            s.blocks[i] = copy;
        }
    }
    const size_t first_new = s.blocks.size();
    while ((int64_t)s.blocks.size() < want) s.blocks.push_back(pool_.take());
    // The new blocks in ascending order: attention reads a sequence's blocks
    // in order, and the CPU streams memory that ascends. The pool hands out a
    // finished sequence's blocks last one first (its eviction order); read
    // backwards, 16 sequences' attention at 448 positions took 8.8 ms
    // against 7.2-7.5 (best of runs) on the Xeon VM (bench/attention_bench.py, a
    // throwaway build that reversed each sequence's blocks; bench/README.md,
    // 2026-12-06 22:30). The same blocks in another order: which ones the
    // pool evicts, and when, does not change.
    std::sort(s.blocks.begin() + (std::ptrdiff_t)first_new, s.blocks.end());
    return true;
}

void KVCacheManager::cache_blocks(int seq, const int32_t* tokens, int64_t n_computed) {
    check(seq);
    Sequence& s = seqs_[seq];
    if (!pool_.prefix_caching()) return;
    const int64_t full = std::min<int64_t>(n_computed / kBlockTokens, (int64_t)s.blocks.size());
    while ((int64_t)s.hashes.size() < full) {
        const size_t i = s.hashes.size();
        const BlockKey key = block_key(i == 0 ? 0 : s.hashes[i - 1], tokens + i * kBlockTokens, kBlockTokens);
        pool_.cache(s.blocks[i], key, tokens + i * kBlockTokens);
        s.hashes.push_back(key.hash);
    }
}

}  // namespace hearth
