#include "model/model.h"

#include <algorithm>
#include <cstring>

#include "model/attention.h"
#include "base/error.h"
#include "kernels/kernels.h"
#include "model/ops.h"

namespace hearth {

namespace {

// Tokens per forward pass: longer prompts go through in chunks (llama.cpp's
// ubatch), which bounds the activation buffers.
constexpr int64_t kMaxBatch = 512;

const float* f32_data(const GGUFTensor* t) { return (const float*)t->data; }

}  // namespace

std::unique_ptr<Model> Model::load(const std::string& path, const ModelOptions& opts) {
    std::unique_ptr<GGUFFile> file = GGUFFile::open(path);
    return std::unique_ptr<Model>(new Model(std::move(file), opts));
}

static int64_t choose_n_ctx(const HParams& hp, int64_t requested) {
    if (requested < 0) throw Error("n_ctx must be positive, got " + std::to_string(requested));
    return requested > 0 ? requested : std::min<int64_t>(hp.n_ctx_train, 4096);
}

Model::Model(std::unique_ptr<GGUFFile> file, const ModelOptions& opts)
    : file_(std::move(file)),
      hp_(read_hparams(*file_)),
      w_(load_weights(*file_, hp_)),
      tokenizer_(Tokenizer::load(*file_)),
      n_ctx_(choose_n_ctx(hp_, opts.n_ctx)),
      pool_(opts.n_threads > 0 ? opts.n_threads : default_thread_count()),
      mm_(pool_),
      cache_(hp_.n_layer, hp_.n_head_kv, hp_.head_dim, opts.kv_type,
             (n_ctx_ + KVCache::kBlockTokens - 1) / KVCache::kBlockTokens) {
    if (opts.n_threads < 0) throw Error("n_threads must be positive, got " + std::to_string(opts.n_threads));
    if (tokenizer_ && tokenizer_->n_tokens() > hp_.n_vocab) {
        throw Error(file_->err("the token list has " + std::to_string(tokenizer_->n_tokens()) +
                               " tokens but token_embd has only " + std::to_string(hp_.n_vocab) + " rows"));
    }
    seq_ = new_sequence();
    rope_inv_freq_ = rope_inv_freq(hp_.rope_base, hp_.rope_dim);
}

void Model::reset() {
    cache_.clear(seq_);
    history_[seq_].clear();
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

void Model::eval_on(int seq, const int32_t* tokens, int64_t n, float* logits, bool all_logits) {
    if (n <= 0) throw Error("eval needs at least one token");
    const std::vector<int> seqs((size_t)n, seq);
    eval_impl(tokens, seqs.data(), n, logits, all_logits);
}

void Model::eval_seqs(const int32_t* tokens, const int* seqs, int64_t n, float* logits) {
    if (n <= 0) throw Error("eval needs at least one token");
    eval_impl(tokens, seqs, n, logits, true);
}

void Model::check_sequence(int seq) const {
    if (!cache_.alive(seq)) throw Error("sequence " + std::to_string(seq) + " does not exist");
}

int Model::new_sequence() {
    const int s = cache_.new_sequence();
    if ((int)history_.size() <= s) history_.resize(s + 1);
    history_[s].clear();
    return s;
}

int Model::fork_sequence(int seq) {
    check_sequence(seq);
    const int s = cache_.fork(seq);
    if ((int)history_.size() <= s) history_.resize(s + 1);
    history_[s] = history_[seq];
    return s;
}

void Model::free_sequence(int seq) {
    check_sequence(seq);
    if (seq == seq_) throw Error("the default sequence cannot be freed (reset() empties it)");
    cache_.free_sequence(seq);
    history_[seq].clear();
}

void Model::truncate(int seq, int64_t n) {
    check_sequence(seq);
    if (n < 0 || n > cache_.length(seq)) {
        throw Error("truncate to " + std::to_string(n) + " positions, but the sequence holds " +
                    std::to_string(cache_.length(seq)));
    }
    cache_.truncate(seq, n);
    history_[seq].resize((size_t)n);
}

void Model::eval_impl(const int32_t* tokens, const int* seqs, int64_t n, float* logits, bool all_logits) {
    // check everything before touching the cache
    std::vector<std::pair<int, int64_t>> before;  // (sequence, length): to grow and to roll back
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab) {
            throw Error("token id " + std::to_string(tokens[i]) + " is out of range [0, " + std::to_string(hp_.n_vocab) + ")");
        }
        check_sequence(seqs[i]);
        auto it = std::find_if(before.begin(), before.end(), [&](const auto& b) { return b.first == seqs[i]; });
        if (it == before.end()) before.emplace_back(seqs[i], cache_.length(seqs[i]));
    }
    for (const auto& [seq, len] : before) {
        const int64_t adds = std::count(seqs, seqs + n, seq);
        if (len + adds > n_ctx_) {
            throw Error(std::to_string(adds) + " tokens do not fit in the context: n_ctx is " + std::to_string(n_ctx_) +
                        " and the cache already holds " + std::to_string(len) + " (raise n_ctx or shorten the prompt)");
        }
    }
    std::vector<int64_t> pos((size_t)n);
    try {
        for (int64_t i = 0; i < n; i += kMaxBatch) {
            const int64_t chunk = std::min(kMaxBatch, n - i);
            for (int64_t t = i; t < i + chunk; t++) {
                pos[t] = cache_.length(seqs[t]);
                cache_.grow(seqs[t], 1);
            }
            const bool last_chunk = i + chunk == n;
            // rows of the chunk land at their place among all rows; when only
            // the last row is wanted, only the last chunk writes it
            float* out = all_logits ? logits + i * hp_.n_vocab : (last_chunk ? logits : nullptr);
            forward(tokens + i, seqs + i, pos.data() + i, chunk, out, all_logits);
        }
    } catch (...) {
        for (const auto& [seq, len] : before) cache_.truncate(seq, len);  // leave the cache as it was
        throw;
    }
    for (int64_t i = 0; i < n; i++) history_[seqs[i]].push_back(tokens[i]);
}

void Model::forward(const int32_t* tokens, const int* seqs, const int64_t* pos, int64_t n, float* logits,
                    bool all_logits) {
    const KernelTable& kt = kernels();
    const int64_t E = hp_.n_embd, F = hp_.n_ff, V = hp_.n_vocab, hd = hp_.head_dim;
    const int64_t QD = hp_.n_head * hd, KD = hp_.n_head_kv * hd;
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
    for (int64_t il = 0; il < hp_.n_layer; il++) {
        const LayerWeights& L = w_.layers[il];

        // attention block
        for (int64_t t = 0; t < n; t++) rmsnorm(x + t * E, f32_data(L.attn_norm), xn + t * E, E, hp_.rms_eps);
        const MatmulInput in = mm_.prepare(xn, n, E, is_quantized(L.wq->type) || is_quantized(L.wk->type) ||
                                                         is_quantized(L.wv->type));
        const Matmul::Output qkv[] = {{L.wq, q_.data(), QD}, {L.wk, k_.data(), KD}, {L.wv, v_.data(), KD}};
        mm_.run_many(qkv, 3, in);
        for (int64_t t = 0; t < n; t++) {
            float* q = q_.data() + t * QD;
            float* k = k_.data() + t * KD;
            float* v = v_.data() + t * KD;
            if (L.bq) {
                add_bias(q, f32_data(L.bq), QD);
                add_bias(k, f32_data(L.bk), KD);
                add_bias(v, f32_data(L.bv), KD);
            }
            rope(q, hp_.n_head, hd, rope_angles_[t], hp_.arch->rope_style);
            rope(k, hp_.n_head_kv, hd, rope_angles_[t], hp_.arch->rope_style);
            for (int64_t h = 0; h < hp_.n_head_kv; h++) {
                void* kc = cache_.key(seqs[t], il, pos[t], h);
                void* vc = cache_.value(seqs[t], il, pos[t], h);
                if (cache_.type() == KVType::F16) {
                    kt.f32_to_f16_row(k + h * hd, (uint16_t*)kc, hd);
                    kt.f32_to_f16_row(v + h * hd, (uint16_t*)vc, hd);
                } else {
                    std::memcpy(kc, k + h * hd, sizeof(float) * hd);
                    std::memcpy(vc, v + h * hd, sizeof(float) * hd);
                }
            }
        }
        attention(cache_, seqs, pos, il, shape, q_.data(), n, attn_.data(), pool_);
        const MatmulInput ain = mm_.prepare(attn_.data(), n, QD, is_quantized(L.wo->type));
        mm_.run(*L.wo, ain, xn, E);  // xn is free again: reuse it for the projection
        for (int64_t i = 0; i < n * E; i++) x[i] += xn[i];

        // feed-forward block (SwiGLU)
        for (int64_t t = 0; t < n; t++) rmsnorm(x + t * E, f32_data(L.ffn_norm), xn + t * E, E, hp_.rms_eps);
        const MatmulInput fin = mm_.prepare(xn, n, E, is_quantized(L.w_gate->type) || is_quantized(L.w_up->type));
        const Matmul::Output gate_up[] = {{L.w_gate, gate_.data(), F}, {L.w_up, up_.data(), F}};
        mm_.run_many(gate_up, 2, fin);
        silu_mul(gate_.data(), up_.data(), n * F);
        const MatmulInput din = mm_.prepare(gate_.data(), n, F, is_quantized(L.w_down->type));
        mm_.run(*L.w_down, din, xn, E);
        for (int64_t i = 0; i < n * E; i++) x[i] += xn[i];
    }

    if (!logits) return;
    // logits for every token, or for the last one only
    const int64_t first = all_logits ? 0 : n - 1;
    const int64_t rows = n - first;
    for (int64_t t = 0; t < rows; t++) {
        rmsnorm(x + (first + t) * E, f32_data(w_.output_norm), xn + t * E, E, hp_.rms_eps);
    }
    const MatmulInput oin = mm_.prepare(xn, rows, E, is_quantized(w_.output->type));
    mm_.run(*w_.output, oin, logits, V);
}

std::vector<int32_t> Model::generate_greedy(const std::vector<int32_t>& prompt, int64_t max_tokens, bool stop_at_eos) {
    if (max_tokens < 0) throw Error("max_tokens must be >= 0, got " + std::to_string(max_tokens));
    std::vector<int32_t> out;
    if (max_tokens == 0) return out;
    std::vector<float> logits(hp_.n_vocab);
    std::vector<int32_t> feed = prompt;
    if (feed.empty()) throw Error("generate_greedy needs a non-empty prompt");
    while ((int64_t)out.size() < max_tokens) {
        eval(feed.data(), (int64_t)feed.size(), logits.data(), false);
        const int32_t next = (int32_t)(std::max_element(logits.begin(), logits.end()) - logits.begin());
        out.push_back(next);
        if (stop_at_eos && next == hp_.eos_token_id) break;
        if (n_past() >= n_ctx_) break;
        feed.assign(1, next);
    }
    return out;
}

}  // namespace hearth
