// Causal multi-head attention over the paged KV cache, with grouped-query
// heads (several query heads read one key/value head).
#pragma once

#include <cstdint>

#include "kv_cache.h"
#include "thread_pool.h"

namespace hearth {

struct AttentionShape {
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
};

// q: [n_tokens, n_head * head_dim] for positions p0 .. p0 + n_tokens - 1 of
// seq, whose keys and values are already in the cache. Token t attends to
// positions 0 .. p0 + t. Writes out: [n_tokens, n_head * head_dim].
void attention(KVCache& cache, int seq, int64_t layer, const AttentionShape& shape, const float* q, int64_t n_tokens,
               int64_t p0, float* out, ThreadPool& pool);

}  // namespace hearth
