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

    pool.parallel_for(s.n_head * n_rows, [&](int64_t task) {
        const int64_t h = task % s.n_head;
        const int64_t t = task / s.n_head;
        const int64_t n_pos = b.pos[row0 + t] + 1;  // causal: positions 0 .. pos
        const std::vector<int32_t>& blocks = *b.block_tables[b.seq[row0 + t]];
        const int64_t kvh = h / group;
        const float* qh = q + t * s.n_head * hd + h * hd;
        float* oh = out + t * s.n_head * hd + h * hd;

        thread_local std::vector<float> scores;
        if ((int64_t)scores.size() < n_pos) scores.resize(n_pos);

        // scores, block by block of the sequence's cache
        for (int64_t pos = 0; pos < n_pos; pos += B) {
            const int64_t n = std::min(B, n_pos - pos);
            const void* k = cache.block_data(blocks[pos / B], layer, kvh, 0);
            if (f16) kt.dots_f16(qh, (const uint16_t*)k, n, hd, scores.data() + pos);
            else kt.dots_f32(qh, (const float*)k, n, hd, scores.data() + pos);
        }
        kt.scaled_softmax(scores.data(), n_pos, scale);
        // the values, weighted
        std::memset(oh, 0, sizeof(float) * hd);
        for (int64_t pos = 0; pos < n_pos; pos += B) {
            const int64_t n = std::min(B, n_pos - pos);
            const void* v = cache.block_data(blocks[pos / B], layer, kvh, 1);
            if (f16) kt.accumulate_f16(scores.data() + pos, (const uint16_t*)v, n, hd, oh);
            else kt.accumulate_f32(scores.data() + pos, (const float*)v, n, hd, oh);
        }
    });
}

}  // namespace hearth
