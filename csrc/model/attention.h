// Causal multi-head attention over the paged KV cache, with grouped-query
// heads (several query heads read one key/value head).
#pragma once

#include <cstdint>

#include "base/thread_pool.h"
#include "model/batch.h"
#include "model/kv_cache.h"

namespace hearth {

struct AttentionShape {
    int64_t n_head;
    int64_t n_head_kv;
    int64_t head_dim;
};

// Rows [row0, row0 + n_rows) of the batch. q: [n_rows, n_head * head_dim];
// a row at position p of its sequence attends to positions 0 .. p, whose
// keys and values of this layer are in the cache. Writes out:
// [n_rows, n_head * head_dim]. Each (row, head) is computed on its own, in
// the same order whatever else is in the batch.
void attention(const KVCache& cache, const Batch& b, int64_t row0, int64_t n_rows, int64_t layer,
               const AttentionShape& shape, const float* q, float* out, ThreadPool& pool);

}  // namespace hearth
