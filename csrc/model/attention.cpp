#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/kernels.h"
#include "model/ops.h"

namespace hearth {

void attention(const KVCache& cache, const Batch& b, int64_t row0, int64_t n_rows, int64_t layer,
               const AttentionShape& s, const float* q, float* out, ThreadPool& pool) {
    const KernelTable& kt = kernels();
    const int64_t hd = s.head_dim;
    const int64_t group = s.n_head / s.n_head_kv;
    const float scale = 1.0f / std::sqrt((float)hd);
    const bool f16 = cache.type() == KVType::F16;
    constexpr int64_t B = KVCache::kBlockTokens;

    // A task is a row and some query heads of one KV head: block by block,
    // those heads read the block's keys and values while they are in L1
    // (grouped-query attention: Qwen2.5-0.5B has 7 query heads per KV head).
    // Heads are split into smaller sets only when there are too few tasks to
    // keep every thread busy. Each head's arithmetic is the same either way.
    const int64_t want_tasks = 2 * (int64_t)pool.size();
    int64_t per_task = group;
    while (per_task > 1 && n_rows * s.n_head_kv * ((group + per_task - 1) / per_task) < want_tasks) per_task = (per_task + 1) / 2;
    const int64_t sets = (group + per_task - 1) / per_task;

    pool.parallel_for(n_rows * s.n_head_kv * sets, [&](int64_t task) {
        const int64_t set = task % sets;
        const int64_t kvh = (task / sets) % s.n_head_kv;
        const int64_t t = task / (sets * s.n_head_kv);
        const int64_t h0 = kvh * group + set * per_task;
        const int64_t nh = std::min(per_task, group - set * per_task);
        const int64_t n_pos = b.pos[row0 + t] + 1;  // causal: positions 0 .. pos
        const std::vector<int32_t>& blocks = *b.block_tables[b.seq[row0 + t]];
        const float* qt = q + t * s.n_head * hd;
        float* ot = out + t * s.n_head * hd;

        thread_local std::vector<float> scores;  // nh rows of n_pos
        if ((int64_t)scores.size() < nh * n_pos) scores.resize(nh * n_pos);

        // scores, block by block of the sequence's cache
        for (int64_t pos = 0; pos < n_pos; pos += B) {
            const int64_t n = std::min(B, n_pos - pos);
            const void* k = cache.block_data(blocks[pos / B], layer, kvh, 0);
            for (int64_t i = 0; i < nh; i++) {
                const float* qh = qt + (h0 + i) * hd;
                float* sc = scores.data() + i * n_pos + pos;
                if (f16) kt.dots_f16(qh, (const uint16_t*)k, n, hd, sc);
                else kt.dots_f32(qh, (const float*)k, n, hd, sc);
            }
        }
        for (int64_t i = 0; i < nh; i++) {
            kt.scaled_softmax(scores.data() + i * n_pos, n_pos, scale);
            std::memset(ot + (h0 + i) * hd, 0, sizeof(float) * hd);
        }
        // the values, weighted
        for (int64_t pos = 0; pos < n_pos; pos += B) {
            const int64_t n = std::min(B, n_pos - pos);
            const void* v = cache.block_data(blocks[pos / B], layer, kvh, 1);
            for (int64_t i = 0; i < nh; i++) {
                const float* w = scores.data() + i * n_pos + pos;
                float* oh = ot + (h0 + i) * hd;
                if (f16) kt.accumulate_f16(w, (const uint16_t*)v, n, hd, oh);
                else kt.accumulate_f32(w, (const float*)v, n, hd, oh);
            }
        }
    });
}

}  // namespace hearth
