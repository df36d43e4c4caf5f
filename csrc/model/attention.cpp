#include "model/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/cache_aligned.h"
#include "base/prefetch.h"
#include "kernels/kernels.h"

namespace hearth {

namespace {

constexpr int64_t B = KVCache::kBlockTokens;

// Rows a task takes together: consecutive rows of one sequence (a prefill
// chunk), up to this many, so that every block of keys and values they
// share is read, and converted to f32, once for all of them.
constexpr int64_t kRunRows = 16;
// From this many queries (rows × heads) on, a task converts each f16 block
// (of q8_0, each block of values: its keys are scored on integers) to f32
// once instead of converting it in the loads of each group of queries (the
// same values: the kernels promise bit-identical results either way): when
// more than one group reads the block.
constexpr int64_t kConvertQueries = kGroupQueries + 1;
// How far ahead of use a task asks for its keys and values (see attend):
// enough to cover the memory's latency behind the work on the blocks
// before them (at head_dim 64: three q8_0 blocks, two f16; at least one).
constexpr size_t kPrefetchBytes = 4 * 1024;

struct RowRun {
    int64_t first, count;  // rows of the batch
};

std::vector<RowRun> row_runs(const Batch& b, int64_t row0, int64_t n_rows) {
    std::vector<RowRun> runs;
    for (int64_t t = 0; t < n_rows; t++) {
        const bool extend = !runs.empty() && runs.back().count < kRunRows &&
                            b.seq[row0 + t] == b.seq[runs.back().first + runs.back().count - 1];
        if (extend) runs.back().count++;
        else runs.push_back({row0 + t, 1});
    }
    return runs;
}

// The task: rows [run.first, +count) and query heads [h0, h0 + nh), which
// all read KV head kvh. q and out are indexed by batch row minus row0.
struct Task {
    RowRun run;
    int64_t kvh, h0, nh;
};

// Positions the run's rows see: up to its last row's (causal).
int64_t longest_position(const Batch& b, const RowRun& run) {
    int64_t longest = 0;
    for (int64_t r = 0; r < run.count; r++) longest = std::max<int64_t>(longest, b.pos[run.first + r] + 1);
    return longest;
}

void attend(const KVCache& cache, const Batch& b, int64_t row0, int64_t layer, const AttentionShape& s,
            const Task& task, const float* q, float* out, const Task* next) {
    const KernelTable& kt = kernels();
    const int64_t hd = s.head_dim, QD = s.n_head * hd;
    const float scale = 1.0f / std::sqrt((float)hd);
    const KVType type = cache.type();
    const std::vector<int32_t>& blocks = *b.block_tables[b.seq[task.run.first]];
    const int64_t rows = task.run.count, nh = task.nh;
    auto n_pos = [&](int64_t r) { return b.pos[task.run.first + r] + 1; };  // causal: positions 0 .. pos
    auto query = [&](int64_t r, int64_t i) { return q + (task.run.first - row0 + r) * QD + (task.h0 + i) * hd; };
    auto output = [&](int64_t r, int64_t i) { return out + (task.run.first - row0 + r) * QD + (task.h0 + i) * hd; };
    const int64_t longest = longest_position(b, task.run);
    const int64_t stride = (longest + B - 1) / B * B;  // a query's scores, whole blocks
    const bool convert = type != KVType::F32 && rows * nh >= kConvertQueries;

    thread_local CacheAlignedVector<float> scores, block_f32;
    if ((int64_t)scores.size() < rows * nh * stride) scores.resize(rows * nh * stride);
    if (convert && (int64_t)block_f32.size() < B * hd) block_f32.resize(B * hd);
    auto score_row = [&](int64_t r, int64_t i) { return scores.data() + (r * nh + i) * stride; };
    // q8_0 keys take the queries quantized (as llama.cpp's do): once per task
    thread_local CacheAlignedVector<int8_t> q_quants;  // a query's quants: a cache line at head_dim 64
    thread_local CacheAlignedVector<float> q_scales;
    const int64_t groups = hd / kKVQuantGroup;
    if (type == KVType::Q8_0) {
        q_quants.resize(rows * nh * hd);
        q_scales.resize(rows * nh * groups);
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < nh; i++)
                kt.quantize_kv_q8_0(query(r, i), hd, &q_quants[(r * nh + i) * hd], &q_scales[(r * nh + i) * groups]);
    }
    // a block as f32 (converted once for all the task's queries, or stored so)
    auto as_f32 = [&](const void* block, int64_t n) -> const float* {
        if (type == KVType::F32) return (const float*)block;
        if (!convert) return nullptr;
        if (type == KVType::F16) kt.f16_to_f32_row((const uint16_t*)block, block_f32.data(), n * hd);
        else kt.dequantize_values_q8(block, n, hd, block_f32.data());  // q8_0 keys are never converted
        return block_f32.data();
    };

    // The task's blocks, keys then values (block i < n_blocks: keys of
    // block i; then the values), asked for into L2 ahead of use: the first
    // kPrefetchBytes at once, then one block that far ahead as a loop below
    // reaches each block. Each block's lines sit apart from the block
    // before, where the CPU's own prefetcher starts over.
    // On the Xeon VM, bench/attention_bench.py (q8_0 cache, SmolLM2's 30
    // layers; bench/README.md, 2026-12-06 20:20), against asking for 128 KiB
    // ahead in bursts of 16 blocks: one row each of 16 sequences at 448
    // positions 6.89-8.23 ms against 8.03-8.66, of 8 at 1,900 15.61-16.64
    // against 17.07-17.72. Asked for that far ahead, all of a short task's
    // blocks were asked for at its start: the requests queue up and the
    // work waits for them instead of overlapping them.
    const size_t block_bytes = cache.run_bytes();
    const int64_t n_blocks = (longest + B - 1) / B;
    const int64_t ahead = std::max<int64_t>(1, (int64_t)(kPrefetchBytes / block_bytes));
    auto prefetch = [&](int64_t i) {  // block i, if the task has it
        if (i >= 2 * n_blocks) return;
        const int kv = i < n_blocks ? 0 : 1;
        prefetch_l2(cache.block_data(blocks[i - kv * n_blocks], layer, task.kvh, kv), block_bytes);
    };
    auto prefetch_ahead_of = [&](int64_t i) { prefetch(i + ahead); };
    for (int64_t i = 0; i < ahead; i++) prefetch(i);

    // scores, block by block of the sequence's cache
    for (int64_t p = 0; p < longest; p += B) {
        prefetch_ahead_of(p / B);
        const void* k = cache.block_data(blocks[p / B], layer, task.kvh, 0);
        const float* kf = type == KVType::Q8_0 ? nullptr : as_f32(k, B);
        // the queries that see this block, in groups that share its loads
        // (each query's scores are the same either way)
        const float* qs[kGroupQueries];
        QueryQ8 qq[kGroupQueries];
        float* outs[kGroupQueries];
        int nq = 0;
        auto flush = [&] {
            if (kf) kt.scores_group_f32(qs, nq, kf, hd, outs);
            else if (type == KVType::F16) kt.scores_group_f16(qs, nq, (const uint16_t*)k, hd, outs);
            else kt.scores_group_q8(qq, nq, k, hd, outs);
            nq = 0;
        };
        for (int64_t r = 0; r < rows; r++) {
            if (n_pos(r) <= p) continue;
            for (int64_t i = 0; i < nh; i++) {
                qs[nq] = query(r, i);
                if (type == KVType::Q8_0) qq[nq] = {&q_quants[(r * nh + i) * hd], &q_scales[(r * nh + i) * groups]};
                outs[nq] = score_row(r, i) + p;
                if (++nq == kGroupQueries) flush();
            }
        }
        if (nq > 0) flush();
    }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t i = 0; i < nh; i++) {
            kt.scaled_softmax(score_row(r, i), n_pos(r), scale);
            std::memset(output(r, i), 0, sizeof(float) * hd);
        }
    // The keys of the task this thread will likely take next, asked for
    // while this one works on its values: scoring keys is little work per
    // byte, weighing values much, so the next task's keys come from memory
    // behind this one's arithmetic instead of in a phase with little to
    // hide them (bench/attention_bench.py, q8_0, on the Xeon VM, best ms of
    // three rounds: 16 sequences at 448 positions 6.18-6.62 -> 5.84-6.09,
    // 8 at 1,900 14.02-14.81 -> 12.45-13.65; bench/README.md, 2026-12-06
    // 22:30). At most `ahead` blocks per block of values: a short task
    // before a long one asks for the long one's first keys, not all at once.
    const std::vector<int32_t>* next_blocks = next ? b.block_tables[b.seq[next->run.first]] : nullptr;
    const int64_t next_n = next ? (longest_position(b, next->run) + B - 1) / B : 0;
    const int64_t next_per_block = std::min(ahead, (next_n + n_blocks - 1) / n_blocks);
    auto prefetch_next_keys = [&](int64_t value_block) {
        if (!next_blocks) return;
        const int64_t from = value_block * next_per_block, to = std::min(next_n, from + next_per_block);
        for (int64_t i = from; i < to; i++)
            prefetch_l2(cache.block_data((*next_blocks)[i], layer, next->kvh, 0), block_bytes);
    };

    // the values, weighted
    for (int64_t p = 0; p < longest; p += B) {
        prefetch_ahead_of(n_blocks + p / B);
        prefetch_next_keys(p / B);
        const void* v = cache.block_data(blocks[p / B], layer, task.kvh, 1);
        const float* vf = as_f32(v, std::min(B, longest - p));
        for (int64_t r = 0; r < rows; r++) {
            if (n_pos(r) <= p) continue;
            const int64_t n = std::min(B, n_pos(r) - p);
            // the row's heads weigh the same n values: in groups that share their loads
            for (int64_t i0 = 0; i0 < nh; i0 += kGroupQueries) {
                const int nq = (int)std::min<int64_t>(kGroupQueries, nh - i0);
                const float* ws[kGroupQueries];
                float* outs[kGroupQueries];
                for (int m = 0; m < nq; m++) ws[m] = score_row(r, i0 + m) + p, outs[m] = output(r, i0 + m);
                if (vf) kt.accumulate_group_f32(ws, nq, vf, n, hd, outs);
                else if (type == KVType::F16) kt.accumulate_group_f16(ws, nq, (const uint16_t*)v, n, hd, outs);
                else kt.accumulate_group_q8(ws, nq, v, n, hd, outs);
            }
        }
    }
}

}  // namespace

void attention(const KVCache& cache, const Batch& b, int64_t row0, int64_t n_rows, int64_t layer,
               const AttentionShape& s, const float* q, float* out, ThreadPool& pool) {
    const int64_t group = s.n_head / s.n_head_kv;
    const std::vector<RowRun> runs = row_runs(b, row0, n_rows);

    // A task is a run of rows and some query heads of one KV head: block by
    // block, those rows and heads read the block's keys and values while
    // they are in L1 (grouped-query attention: Qwen2.5-0.5B has 7 query
    // heads per KV head). Heads are split into smaller sets only when there
    // are too few tasks to keep every thread busy. Each (row, head) takes the
    // same arithmetic whatever its task.
    const int64_t n_runs = (int64_t)runs.size(), want_tasks = 2 * (int64_t)pool.size();
    int64_t per_task = group;
    while (per_task > 1 && n_runs * s.n_head_kv * ((group + per_task - 1) / per_task) < want_tasks) per_task = (per_task + 1) / 2;
    const int64_t sets = (group + per_task - 1) / per_task;

    const int64_t n_tasks = n_runs * s.n_head_kv * sets;
    auto task_at = [&](int64_t i) {
        Task task;
        const int64_t set = i % sets;
        task.kvh = (i / sets) % s.n_head_kv;
        task.run = runs[n_runs - 1 - i / (sets * s.n_head_kv)];  // the longest (latest) runs first
        task.h0 = task.kvh * group + set * per_task;
        task.nh = std::min(per_task, group - set * per_task);
        return task;
    };
    // The pool hands tasks out in order to whichever thread asks: with
    // threads that keep pace, this one's next is `threads` further on (a
    // guess; a wrong one costs a few wasted requests, never a result).
    const int64_t threads = pool.size();
    pool.parallel_for(n_tasks, [&](int64_t i) {
        const Task task = task_at(i);
        if (i + threads < n_tasks) {
            const Task next = task_at(i + threads);
            attend(cache, b, row0, layer, s, task, q, out, &next);
        } else {
            attend(cache, b, row0, layer, s, task, q, out, nullptr);
        }
    });
}

}  // namespace hearth
