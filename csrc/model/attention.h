// Causal multi-head attention over the paged KV cache, with grouped-query
// heads (several query heads read one key/value head).
#pragma once

#include <cstdint>

#include "model/kv_cache.h"
#include "base/thread_pool.h"

namespace hearth {

struct AttentionShape {
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
};

// q: [n_tokens, n_head * head_dim]; token t is at position pos[t] of
// sequence seq[t], whose keys and values up to there are in the cache. It
// attends to positions 0 .. pos[t] of its own sequence. Writes out:
// [n_tokens, n_head * head_dim].
void attention(KVCache& cache, const int* seq, const int64_t* pos, int64_t layer, const AttentionShape& shape,
               const float* q, int64_t n_tokens, float* out, ThreadPool& pool);

}  // namespace hearth
