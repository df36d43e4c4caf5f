#include "model/model.h"

#include <algorithm>
#include <cstring>

#include "base/error.h"
#include "kernels/kernels.h"
#include "model/attention.h"
#include "model/ops.h"

namespace hearth {

namespace {

// Rows per forward pass: longer batches go through in chunks (llama.cpp's
// ubatch), which bounds the activation buffers.
constexpr int64_t kMaxBatch = 512;

const float* f32_data(const GGUFTensor* t) { return (const float*)t->data; }

// Rows [row0, row0 + n) of b that want logits, as a batch of their own (the
// same sequences and positions), and where each was: rows[i] = its index in
// [0, n).
Batch rows_wanting_logits(const Batch& b, int64_t row0, int64_t n, std::vector<int64_t>& rows) {
    Batch out;
    out.block_tables = b.block_tables;
    rows.clear();
    for (int64_t t = 0; t < n; t++) {
        if (!b.want_logits[row0 + t]) continue;
        out.add(b.tokens[row0 + t], b.seq[row0 + t], b.pos[row0 + t], true);
        rows.push_back(t);
    }
    return out;
}

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const ModelOptions& opts) {
    if (opts.n_threads < 0) throw Error("n_threads must be positive, got " + std::to_string(opts.n_threads));
    // each thread is an OS thread with its own stack and scratch: a typo of
    // 100000 must not take the machine down (llama.cpp's cap is 512 too)
    constexpr int kMaxThreads = 512;
    if (opts.n_threads > kMaxThreads) {
        throw Error("n_threads must be at most " + std::to_string(kMaxThreads) + ", got " + std::to_string(opts.n_threads));
    }
    std::unique_ptr<GGUFFile> file = GGUFFile::open(path);
    return std::unique_ptr<Model>(new Model(std::move(file), opts));
}

Model::Model(std::unique_ptr<GGUFFile> file, const ModelOptions& opts)
    : file_(std::move(file)),
      hp_(read_hparams(*file_)),
      w_(load_weights(*file_, hp_)),
      pool_(opts.n_threads > 0 ? opts.n_threads : default_thread_count()),
      mm_(pool_, opts.activations, file_.get()) {
    rope_inv_freq_ = rope_inv_freq(hp_.rope_base, hp_.rope_dim);
    // the kernels' own weight layout, made once here rather than at the first token
    std::vector<const GGUFTensor*> matrices{w_.output};
    for (const LayerWeights& L : w_.layers)
        matrices.insert(matrices.end(), {L.wq, L.wk, L.wv, L.wo, L.w_gate, L.w_up, L.w_down});
    mm_.pack_weights(matrices);
}

std::unique_ptr<KVCache> Model::new_kv_cache(KVType type, int64_t n_blocks) const {
    return std::make_unique<KVCache>(hp_.n_layer, hp_.n_head_kv, hp_.head_dim, type, n_blocks);
}

void Model::ensure_scratch(int64_t n) {
    if (n <= scratch_tokens_) return;
    const int64_t E = hp_.n_embd, QD = hp_.n_head * hp_.head_dim, KD = hp_.n_head_kv * hp_.head_dim;
    x_.resize(n * E);
    xn_.resize(n * std::max(E, QD));
    q_.resize(n * QD);
    k_.resize(n * KD);
    v_.resize(n * KD);
    attn_.resize(n * QD);
    gate_.resize(n * hp_.n_ff);
    up_.resize(n * hp_.n_ff);
    scratch_tokens_ = n;
}

void Model::check_batch(const Batch& b, const KVCache& cache) const {
    const int64_t n = b.size();
    if (n <= 0) throw Error("a batch needs at least one row");
    HEARTH_CHECK((int64_t)b.seq.size() == n && (int64_t)b.pos.size() == n && (int64_t)b.want_logits.size() == n,
                 "batch: tokens, seq, pos and want_logits differ in length");
    for (int64_t i = 0; i < n; i++) {
        if (b.tokens[i] < 0 || b.tokens[i] >= hp_.n_vocab) {
            throw Error("token id " + std::to_string(b.tokens[i]) + " is out of range [0, " + std::to_string(hp_.n_vocab) + ")");
        }
        HEARTH_CHECK(b.seq[i] >= 0 && b.seq[i] < (int32_t)b.block_tables.size(), "batch: row of an unknown sequence");
        const std::vector<int32_t>& blocks = *b.block_tables[b.seq[i]];
        HEARTH_CHECK(b.pos[i] >= 0 && b.pos[i] / KVCache::kBlockTokens < (int64_t)blocks.size(),
                     "batch: position " + std::to_string(b.pos[i]) + " is past its sequence's KV blocks");
    }
    for (const std::vector<int32_t>* t : b.block_tables) {
        for (int32_t block : *t) HEARTH_CHECK(block >= 0 && block < cache.n_blocks(), "batch: KV block out of range");
    }
}

void Model::decode(const Batch& b, KVCache& cache, float* logits) {
    check_batch(b, cache);
    float* out = logits;
    for (int64_t i = 0; i < b.size(); i += kMaxBatch) {
        const int64_t n = std::min(kMaxBatch, b.size() - i);
        forward(b, i, n, cache, out);
        const int64_t wanted = std::count(b.want_logits.begin() + i, b.want_logits.begin() + i + n, 1);
        if (out) out += wanted * hp_.n_vocab;
    }
}

// GLM-4's norm of a block's output, row by row in place, before the residual add.
void Model::post_norm(float* rows, int64_t n, const GGUFTensor* weight) {
    const int64_t E = hp_.n_embd;
    pool_.parallel_for_rows(n, [&](int64_t t) { rmsnorm(rows + t * E, f32_data(weight), rows + t * E, E, hp_.rms_eps); });
}

void Model::forward(const Batch& b_in, int64_t row0_in, int64_t n, KVCache& cache, float* logits) {
    const KernelTable& kt = kernels();
    const int64_t E = hp_.n_embd, F = hp_.n_ff, V = hp_.n_vocab, hd = hp_.head_dim;
    const int64_t QD = hp_.n_head * hd, KD = hp_.n_head_kv * hd;
    // The rows this pass computes: all of them, until the last layer's keys
    // and values are written; past those only the rows that want logits
    // matter (llama.cpp's inp_out_ids, applied before the last layer's
    // attention rather than after it): then batch, row0 and n become those.
    const Batch* batch = &b_in;
    int64_t row0 = row0_in;
    Batch last_rows;
    std::vector<int64_t> kept;
    const int32_t* tokens = b_in.tokens.data() + row0;
    const int64_t* pos = b_in.pos.data() + row0;
    ensure_scratch(n);

    float* x = x_.data();
    float* xn = xn_.data();
    for (int64_t t = 0; t < n; t++) {
        const GGUFTensor* emb = w_.token_embd;
        dequantize_row(emb->type, emb->data + (size_t)tokens[t] * row_bytes(emb->type, E), x + t * E, E);
    }

    if ((int64_t)rope_angles_.size() < n) rope_angles_.resize(n);
    for (int64_t t = 0; t < n; t++) rope_angles_[t].compute(pos[t], hp_.rope_dim, rope_inv_freq_);

    const AttentionShape shape{hp_.n_head, hp_.n_head_kv, hd};
    // A block's output (in xn) is added to the residual stream x row by row
    // in the task that then normalizes that row for the next block, and each
    // norm in the task that quantizes its row for the matmul after it: per
    // token the same arithmetic, a third fewer passes over the pool (an
    // 8-sequence decode step has some 400 of them).
    bool pending_add = false;
    auto add_and_norm = [&](const GGUFTensor* norm) {
        return [&, norm](int64_t t) {
            float* xt = x + t * E;
            float* out = xn + t * E;
            if (pending_add)
                for (int64_t i = 0; i < E; i++) xt[i] += out[i];
            rmsnorm(xt, f32_data(norm), out, E, hp_.rms_eps);
        };
    };
    for (int64_t il = 0; il < hp_.n_layer; il++) {
        const LayerWeights& L = w_.layers[il];

        // attention block
        const MatmulInput in = mm_.prepare(xn, n, E, is_quantized(L.wq->type) || is_quantized(L.wk->type) ||
                                                         is_quantized(L.wv->type), add_and_norm(L.attn_norm));
        const Matmul::Output qkv[] = {{L.wq, q_.data(), QD}, {L.wk, k_.data(), KD}, {L.wv, v_.data(), KD}};
        mm_.run_many(qkv, 3, in);
        pool_.parallel_for_rows(n, [&](int64_t t) {
            float* q = q_.data() + t * QD;
            float* k = k_.data() + t * KD;
            float* v = v_.data() + t * KD;
            if (L.bq) {
                add_bias(q, f32_data(L.bq), QD);
                add_bias(k, f32_data(L.bk), KD);
                add_bias(v, f32_data(L.bv), KD);
            }
            if (L.q_norm) {  // in place: rmsnorm reads a value before it writes it
                for (int64_t h = 0; h < hp_.n_head; h++) rmsnorm(q + h * hd, f32_data(L.q_norm), q + h * hd, hd, hp_.rms_eps);
                for (int64_t h = 0; h < hp_.n_head_kv; h++) rmsnorm(k + h * hd, f32_data(L.k_norm), k + h * hd, hd, hp_.rms_eps);
            }
            rope(q, hp_.n_head, hd, rope_angles_[t], hp_.arch->rope_style);
            rope(k, hp_.n_head_kv, hd, rope_angles_[t], hp_.arch->rope_style);
            // this row's key and value go to its sequence's block for pos
            const std::vector<int32_t>& blocks = *batch->block_tables[batch->seq[row0 + t]];
            const int32_t block = blocks[pos[t] / KVCache::kBlockTokens];
            const int64_t slot = pos[t] % KVCache::kBlockTokens;
            for (int64_t h = 0; h < hp_.n_head_kv; h++) cache.write(block, il, h, slot, k + h * hd, v + h * hd);
        });
        const auto want = batch->want_logits.begin() + row0;
        if (il == hp_.n_layer - 1 && std::count(want, want + n, 1) < n) {
            last_rows = rows_wanting_logits(*batch, row0, n, kept);
            for (int64_t i = 0; i < (int64_t)kept.size(); i++) {  // kept[i] >= i: in place, front to back
                std::memmove(q_.data() + i * QD, q_.data() + kept[i] * QD, sizeof(float) * QD);
                std::memmove(x + i * E, x + kept[i] * E, sizeof(float) * E);
            }
            batch = &last_rows;
            row0 = 0;
            n = (int64_t)kept.size();
            if (n == 0) break;
        }
        attention(cache, *batch, row0, n, il, shape, q_.data(), attn_.data(), pool_);
        const MatmulInput ain = mm_.prepare(attn_.data(), n, QD, is_quantized(L.wo->type));
        mm_.run(*L.wo, ain, xn, E);  // xn is free again: reuse it for the projection
        if (L.attn_post_norm) post_norm(xn, n, L.attn_post_norm);
        pending_add = true;

        // feed-forward block (SwiGLU)
        const MatmulInput fin = mm_.prepare(xn, n, E, is_quantized(L.w_gate->type) || is_quantized(L.w_up->type),
                                            add_and_norm(L.ffn_norm));
        const Matmul::Output gate_up[] = {{L.w_gate, gate_.data(), F}, {L.w_up, up_.data(), F}};
        mm_.run_many(gate_up, 2, fin);
        const MatmulInput din = mm_.prepare(gate_.data(), n, F, is_quantized(L.w_down->type),
                                            [&](int64_t t) { kt.silu_mul(gate_.data() + t * F, up_.data() + t * F, F); });
        mm_.run(*L.w_down, din, xn, E);
        if (L.ffn_post_norm) post_norm(xn, n, L.ffn_post_norm);
    }
    for (int64_t i = 0; i < n * E; i++) x[i] += xn[i];  // the last block's output

    // logits of the rows that want them, in row order
    int64_t rows = 0;
    for (int64_t t = 0; t < n; t++) {
        if (!batch->want_logits[row0 + t]) continue;
        rmsnorm(x + t * E, f32_data(w_.output_norm), xn + rows * E, E, hp_.rms_eps);
        rows++;
    }
    if (rows == 0 || !logits) return;
    const MatmulInput oin = mm_.prepare(xn, rows, E, is_quantized(w_.output->type));
    mm_.run(*w_.output, oin, logits, V);
}

}  // namespace hearth
