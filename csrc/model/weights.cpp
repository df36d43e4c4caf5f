#include "model/weights.h"

#include "base/error.h"

namespace hearth {

namespace {

// Finds a tensor and checks its shape (ne0 = inner dimension first); 1-D
// tensors (norms, biases) must be f32, as llama.cpp writes them.
const GGUFTensor* expect(const GGUFFile& f, const std::string& name, std::initializer_list<int64_t> shape) {
    const GGUFTensor* t = f.find_tensor(name);
    if (!t) throw Error(f.err("missing tensor '" + name + "'"));
    GGUFTensor want = *t;
    want.n_dims = (int)shape.size();
    int d = 0;
    bool ok = t->n_dims == (int)shape.size();
    for (int64_t n : shape) {
        ok = ok && t->ne[d] == n;
        want.ne[d++] = n;
    }
    if (!ok) {
        throw Error(f.err("tensor '" + name + "' has shape " + t->shape_str() + " but the hyperparameters say " +
                          want.shape_str()));
    }
    if (shape.size() == 1 && t->type != GgmlType::F32) {
        throw Error(f.err("tensor '" + name + "' is " + type_name(t->type) + "; norms and biases must be f32"));
    }
    return t;
}

// Rows [r0, r0 + n) of a 2-D tensor as a tensor of its own (its rows are
// independent blocks of bytes, whatever the type).
const GGUFTensor* row_view(ModelWeights& w, const GGUFTensor& t, int64_t r0, int64_t n, const std::string& name) {
    GGUFTensor v = t;
    v.name = name;
    v.ne[1] = n;
    v.n_bytes = row_bytes(t.type, t.ne[0]) * (size_t)n;
    v.data = t.data + row_bytes(t.type, t.ne[0]) * (size_t)r0;
    v.offset = t.offset + row_bytes(t.type, t.ne[0]) * (size_t)r0;
    w.views.push_back(v);
    return &w.views.back();
}

// Elements [e0, e0 + n) of an f32 vector (a fused bias) as a tensor of its own.
const GGUFTensor* element_view(ModelWeights& w, const GGUFTensor& t, int64_t e0, int64_t n) {
    GGUFTensor v = t;
    v.ne[0] = n;
    v.n_bytes = sizeof(float) * (size_t)n;
    v.data = t.data + sizeof(float) * (size_t)e0;
    v.offset = t.offset + sizeof(float) * (size_t)e0;
    w.views.push_back(v);
    return &w.views.back();
}

}  // namespace

ModelWeights load_weights(const GGUFFile& f, const HParams& hp) {
    const int64_t E = hp.n_embd, F = hp.n_ff, V = hp.n_vocab;
    const int64_t QD = hp.n_head * hp.head_dim, KD = hp.n_head_kv * hp.head_dim;
    ModelWeights w;
    w.token_embd = expect(f, "token_embd.weight", {E, V});
    w.output_norm = expect(f, "output_norm.weight", {E});
    w.output = f.find_tensor("output.weight") ? expect(f, "output.weight", {E, V}) : w.token_embd;
    for (int64_t i = 0; i < hp.n_layer; i++) {
        const std::string p = "blk." + std::to_string(i) + ".";
        LayerWeights l;
        l.attn_norm = expect(f, p + "attn_norm.weight", {E});
        const bool fused = hp.arch->fused_qkv || f.find_tensor(p + "attn_qkv.weight");
        if (fused) {  // one tensor, Q's rows then K's then V's, and one bias
            const GGUFTensor* qkv = expect(f, p + "attn_qkv.weight", {E, QD + 2 * KD});
            l.wq = row_view(w, *qkv, 0, QD, p + "attn_qkv.weight[q]");
            l.wk = row_view(w, *qkv, QD, KD, p + "attn_qkv.weight[k]");
            l.wv = row_view(w, *qkv, QD + KD, KD, p + "attn_qkv.weight[v]");
            if (hp.arch->qkv_bias == QkvBias::Required ||
                (hp.arch->qkv_bias == QkvBias::Optional && f.find_tensor(p + "attn_qkv.bias"))) {
                const GGUFTensor* b = expect(f, p + "attn_qkv.bias", {QD + 2 * KD});
                l.bq = element_view(w, *b, 0, QD);
                l.bk = element_view(w, *b, QD, KD);
                l.bv = element_view(w, *b, QD + KD, KD);
            }
        } else {
            l.wq = expect(f, p + "attn_q.weight", {E, QD});
            l.wk = expect(f, p + "attn_k.weight", {E, KD});
            l.wv = expect(f, p + "attn_v.weight", {E, KD});
        }
        const bool separate_bias = hp.arch->qkv_bias == QkvBias::Required ||
                                   (hp.arch->qkv_bias == QkvBias::Optional && f.find_tensor(p + "attn_q.bias"));
        if (!fused && separate_bias) {
            l.bq = expect(f, p + "attn_q.bias", {QD});
            l.bk = expect(f, p + "attn_k.bias", {KD});
            l.bv = expect(f, p + "attn_v.bias", {KD});
        }
        if (hp.arch->qk_norm) {
            l.q_norm = expect(f, p + "attn_q_norm.weight", {hp.head_dim});
            l.k_norm = expect(f, p + "attn_k_norm.weight", {hp.head_dim});
        }
        l.wo = expect(f, p + "attn_output.weight", {QD, E});
        if (hp.arch->post_norms) l.attn_post_norm = expect(f, p + "post_attention_norm.weight", {E});
        l.ffn_norm = expect(f, p + "ffn_norm.weight", {E});
        if (hp.arch->fused_gate_up) {  // [gate; up] in one tensor: llama.cpp's SWIGLU halves
            const GGUFTensor* up = expect(f, p + "ffn_up.weight", {E, 2 * F});
            l.w_gate = row_view(w, *up, 0, F, p + "ffn_up.weight[gate]");
            l.w_up = row_view(w, *up, F, F, p + "ffn_up.weight[up]");
        } else {
            l.w_gate = expect(f, p + "ffn_gate.weight", {E, F});
            l.w_up = expect(f, p + "ffn_up.weight", {E, F});
        }
        l.w_down = expect(f, p + "ffn_down.weight", {F, E});
        if (hp.arch->post_norms) l.ffn_post_norm = expect(f, p + "post_ffw_norm.weight", {E});
        w.layers.push_back(l);
    }
    return w;
}

}  // namespace hearth
