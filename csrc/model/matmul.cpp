#include "model/matmul.h"

#include <algorithm>

#include "base/error.h"
#include "kernels/kernels.h"

namespace hearth {

namespace {
// Rows per task when repacking at load.
constexpr int64_t kRowsPerTask = 64;

// Rows per task of a matmul. Up to a few dozen tokens (decode, an engine
// batch of decode rows) the weights' stream from memory binds: long runs,
// because the hardware prefetcher keeps up with a long stream and not with
// many short ones (tasks of 64 rows cost SmolLM2's decode a fifth of its
// speed, and 8 or 16 decode rows 4-5 %). More tokens are bound by
// arithmetic: short tasks, which balance better when a thread is slowed (the
// engine's mixed prefill and decode steps ran 4-7 % faster). Either way the
// same number of tasks for every thread, so that they finish together. A
// multiple of 16, every kernel's row tile, so that the tiles' edge paths
// stay off the hot path (the result of a row never depends on the split: the
// kernels promise that).
constexpr int64_t kStreamingTokens = 32;
int64_t rows_per_task(int64_t rows, int threads, int64_t n_tokens) {
    const int64_t max_tiles = (n_tokens <= kStreamingTokens ? 512 : 64) / 16;
    const int64_t tiles = (rows + 15) / 16, per_thread = (tiles + threads - 1) / threads;
    if (per_thread == 0) return 16;  // no rows: one empty task
    const int64_t fewest = (per_thread + max_tiles - 1) / max_tiles;
    // whole tiles per task, and the same number in every task where up to
    // twice as many tasks allow it (576 rows on 2 threads, 36 tiles: 6 tasks
    // of 3 tiles per thread, not 9 tasks of 4, which left one thread a task more)
    int64_t tasks_per_thread = fewest;
    while (per_thread % tasks_per_thread != 0 && tasks_per_thread < 2 * fewest) tasks_per_thread++;
    if (per_thread % tasks_per_thread != 0) tasks_per_thread = fewest;
    const int64_t per_task = (per_thread + tasks_per_thread - 1) / tasks_per_thread;
    return per_task * 16;
}
}  // namespace

MatmulInput Matmul::prepare(const float* x, int64_t n_tokens, int64_t k, bool quantize,
                            const std::function<void(int64_t)>& make_row) {
    MatmulInput in;
    in.x = x;
    in.n_tokens = n_tokens;
    in.k = k;
    if (!quantize) {
        if (make_row) pool_.parallel_for_rows(n_tokens, make_row);
        return in;
    }
    HEARTH_CHECK(k % QK == 0, "activation row length " + std::to_string(k) + " is not a multiple of 32");
    const int64_t nb = k / QK;
    const KernelTable& kt = kernels();
    in.q_type = act_;
    if (act_ == Activations::Q16) {
        if ((int64_t)q16_.size() < n_tokens * nb) q16_.resize(n_tokens * nb);
        block_q16a* q = q16_.data();
        pool_.parallel_for_rows(n_tokens, [&](int64_t t) {
            if (make_row) make_row(t);
            kt.quantize_q16a(x + t * k, q + t * nb, k);
        });
        in.q = q;
        in.q_row_bytes = nb * sizeof(block_q16a);
        return in;
    }
    // packed rows start on 64-byte lines, so that the kernels load them aligned
    const size_t row = (kt.q8a_packed_row_bytes(k) + 63) / 64 * 64;
    if (packed_.size() < row * n_tokens) packed_.resize(row * n_tokens);
    uint8_t* packed = packed_.data();
    const bool groups = groups_read_;
    pool_.parallel_for_rows(n_tokens, [&](int64_t t) {
        if (make_row) make_row(t);
        // a row's blocks on their way to the packed row: in a scratch row
        // that stays in L1, not an array of every token's (a 512-token
        // prompt's was 1 MB, written and read back from beyond L2)
        thread_local std::vector<block_q8a> q8;
        if ((int64_t)q8.size() < nb) q8.resize(nb);
        kt.quantize_q8a(x + t * k, q8.data(), k);
        kt.pack_q8a(q8.data(), k, packed + t * row, groups);
    });
    in.q = packed;
    in.q_row_bytes = row;
    return in;
}

void Matmul::pack_weights(const std::vector<const GGUFTensor*>& ws) {
    if (act_ != Activations::Q8) return;  // the exact path reads the file's blocks
    size_t total = 0;
    for (const GGUFTensor* w : ws) {
        if (!is_quantized(w->type) || packed_at_.count(w)) continue;
        groups_read_ = groups_read_ || reads_activation_groups(w->type);
        packed_at_[w] = total;
        const size_t bytes = q8a_packed_weight_row_bytes(w->type, w->ne[0]) * (size_t)w->rows();
        total += (bytes + 63) / 64 * 64;  // each tensor on its own cache line
    }
    // Huge pages: decode sweeps all of it per token (SmolLM2 decode 10-15 %
    // faster than with 4 KiB pages on the Zen 4 VM, larger files ~4 %). The
    // price is at load: ~1.3 s per GB on VMs whose hypervisor backs every
    // fresh huge page on first touch (clear_page dominates), ~0.4 s with
    // 4 KiB pages; see bench/README.md.
    packed_w_ = PageBuffer(total, "the repacked weights", true);
    const KernelTable& kt = kernels();
    if (!kt.pack_q8a_weights) return;  // packed when a set that packs is chosen
    repack(kt);
}

void Matmul::repack(const KernelTable& kt) {
    for (const auto& [w, at] : packed_at_) {
        const int64_t rows = w->rows(), k = w->ne[0];
        uint8_t* out = packed_w_.data() + at;
        const GGUFTensor* t = w;
        pool_.parallel_for((rows + kRowsPerTask - 1) / kRowsPerTask, [&](int64_t task) {
            const int64_t r0 = task * kRowsPerTask;
            kt.pack_q8a_weights(t->type, t->data, r0, std::min(rows, r0 + kRowsPerTask), k, out);
        });
        // the packed copy takes the place of the file's pages (tensor by
        // tensor: memory never holds both copies of the model)
        if (file_) file_->release_pages(*w);
    }
    packed_by_ = kt.pack_q8a_weights;
}

const void* Matmul::weight_data(const GGUFTensor& w, const KernelTable& kt) {
    if (act_ != Activations::Q8 || !kt.pack_q8a_weights || !is_quantized(w.type)) return w.data;
    const auto it = packed_at_.find(&w);
    HEARTH_CHECK(it != packed_at_.end(), "matmul: tensor '" + w.name + "' was not packed at load");
    if (packed_by_ != kt.pack_q8a_weights) repack(kt);  // tests switch kernel sets
    return packed_w_.data() + it->second;
}

namespace {

MatmulArgs make_args(const GGUFTensor& w, const void* w_data, const MatmulInput& in, float* y, int64_t y_stride) {
    HEARTH_CHECK(w.ne[0] == in.k, "matmul: tensor '" + w.name + "' has rows of " + std::to_string(w.ne[0]) +
                                      " but the input has " + std::to_string(in.k));
    MatmulArgs a;
    a.w_type = w.type;
    a.w = w_data;
    a.w_row_bytes = w_data == w.data ? row_bytes(w.type, w.ne[0]) : q8a_packed_weight_row_bytes(w.type, w.ne[0]);
    if (is_quantized(w.type)) {
        HEARTH_CHECK(in.q != nullptr, "matmul: input not quantized for '" + w.name + "'");
        a.x = in.q;
        a.x_row_bytes = in.q_row_bytes;
        a.x_type = in.q_type;
    } else {
        a.x = in.x;
        a.x_row_bytes = (size_t)in.k * sizeof(float);
    }
    a.y = y;
    a.y_stride = y_stride;
    a.k = in.k;
    a.n_tokens = in.n_tokens;
    a.r0 = 0;
    a.r1 = a.w_rows = w.rows();
    return a;
}

}  // namespace

void Matmul::run(const GGUFTensor& w, const MatmulInput& in, float* y, int64_t y_stride) {
    const Output out{&w, y, y_stride};
    run_many(&out, 1, in);
}

void Matmul::run_many(const Output* outs, int n_outs, const MatmulInput& in) {
    // tasks are numbered across the matrices: [0, n0) for the first, ...
    MatmulArgs args[4];
    int64_t first_task[5] = {0}, task_rows[4];
    HEARTH_CHECK(n_outs >= 1 && n_outs <= 4, "run_many takes 1 to 4 matrices");
    const KernelTable& kt = kernels();
    for (int i = 0; i < n_outs; i++) {
        args[i] = make_args(*outs[i].w, weight_data(*outs[i].w, kt), in, outs[i].y, outs[i].y_stride);
        task_rows[i] = rows_per_task(args[i].r1, pool_.size(), in.n_tokens);
        first_task[i + 1] = first_task[i] + (args[i].r1 + task_rows[i] - 1) / task_rows[i];
    }
    pool_.parallel_for(first_task[n_outs], [&](int64_t task) {
        int i = 0;
        while (task >= first_task[i + 1]) i++;
        MatmulArgs t = args[i];
        t.r0 = (task - first_task[i]) * task_rows[i];
        t.r1 = std::min(args[i].r1, t.r0 + task_rows[i]);
        kt.matmul(t);
    });
}

}  // namespace hearth
