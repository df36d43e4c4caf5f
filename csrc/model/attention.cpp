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

        for (int64_t pos = 0; pos < n_pos; pos += B) {
            const int64_t n = std::min(B, n_pos - pos);
            const uint8_t* k = (const uint8_t*)cache.block_data(blocks[pos / B], layer, kvh, 0);
            for (int64_t j = 0; j < n; j++) {
                const float dot = f16 ? kt.dot_f16((const uint16_t*)k + j * hd, qh, hd)
                                      : kt.dot_f32((const float*)k + j * hd, qh, hd);
                scores[pos + j] = dot * scale;
            }
        }
        softmax(scores.data(), n_pos);
        std::memset(oh, 0, sizeof(float) * hd);
        for (int64_t pos = 0; pos < n_pos; pos += B) {
            const int64_t n = std::min(B, n_pos - pos);
            const uint8_t* v = (const uint8_t*)cache.block_data(blocks[pos / B], layer, kvh, 1);
            for (int64_t j = 0; j < n; j++) {
                if (f16) kt.axpy_f16(scores[pos + j], (const uint16_t*)v + j * hd, oh, hd);
                else kt.axpy_f32(scores[pos + j], (const float*)v + j * hd, oh, hd);
            }
        }
    });
}

}  // namespace hearth
