// The sequences' block tables over the block pool (vLLM's KVCacheManager):
// a sequence grows block by block as its tokens are computed, shares blocks
// with its forks (beams, n > 1 samples) until one of them writes (copy on
// write), starts from the cached blocks of a prefix it shares with earlier
// requests, and gives every block back when it is freed.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/block_pool.h"
#include "model/kv_cache.h"

namespace hearth {

class KVCacheManager {
public:
    static constexpr int64_t kBlockTokens = KVCache::kBlockTokens;

    // Hands out the blocks of cache (whose memory it copies on write).
    KVCacheManager(KVCache& cache, bool prefix_caching);

    const BlockPool& pool() const { return pool_; }

    // Sequences are small integer handles.
    int new_sequence();
    int fork(int seq);    // a new sequence holding all of seq's blocks
    void free(int seq);   // gives its blocks back, the last ones first (evicted first)
    const std::vector<int32_t>& blocks(int seq) const {
        check(seq);
        return seqs_[seq].blocks;
    }

    // Into an empty sequence, the cached blocks that hold the first tokens
    // of `tokens`, whole blocks only and at most max_tokens tokens. Returns
    // how many tokens they hold.
    int64_t take_cached_prefix(int seq, const int32_t* tokens, int64_t max_tokens);
    // Free blocks the pool must have for allocate(seq, first_write, n_tokens).
    int64_t blocks_needed(int seq, int64_t first_write, int64_t n_tokens) const;
    // Room for positions [0, n_tokens), with the blocks of positions from
    // first_write on private to seq (a shared one is copied first). Returns
    // false, changing nothing, when the pool has too few free blocks.
    bool allocate(int seq, int64_t first_write, int64_t n_tokens);
    // The full blocks among seq's first n_computed positions (which hold
    // tokens[0, n_computed)) enter the prefix cache.
    void cache_blocks(int seq, const int32_t* tokens, int64_t n_computed);

    // Prefix-cache counters in tokens, as vLLM's: looked up, and found.
    int64_t prefix_queries() const { return queries_; }
    int64_t prefix_hits() const { return hits_; }

private:
    struct Sequence {
        std::vector<int32_t> blocks;
        std::vector<uint64_t> hashes;  // of its first blocks, each full and cached (the chain's parents)
        bool alive = false;
    };
    void check(int seq) const;

    KVCache& cache_;
    BlockPool pool_;
    std::vector<Sequence> seqs_;
    int64_t queries_ = 0, hits_ = 0;
};

}  // namespace hearth
