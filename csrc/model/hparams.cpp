#include "model/hparams.h"

#include "base/error.h"

namespace hearth {

HParams read_hparams(const GGUFFile& f) {
    HParams hp;
    hp.arch_name = f.get_string("general.architecture");
    hp.arch = &find_arch(hp.arch_name, f.path());
    const std::string a = hp.arch_name + ".";

    hp.n_ctx_train = f.get_int(a + "context_length");
    hp.n_embd = f.get_int(a + "embedding_length");
    hp.n_layer = f.get_int(a + "block_count");
    hp.n_ff = f.get_int(a + "feed_forward_length");
    hp.n_head = f.get_int(a + "attention.head_count");
    hp.n_head_kv = f.get_int_or(a + "attention.head_count_kv", hp.n_head);
    hp.rms_eps = (float)f.get_float(a + "attention.layer_norm_rms_epsilon");
    hp.rope_base = (float)f.get_float_or(a + "rope.freq_base", 10000.0);

    auto positive = [&](int64_t v, const std::string& key) {
        if (v <= 0) throw Error(f.err("metadata '" + key + "' must be positive, got " + std::to_string(v)));
    };
    positive(hp.n_ctx_train, a + "context_length");
    positive(hp.n_embd, a + "embedding_length");
    positive(hp.n_layer, a + "block_count");
    positive(hp.n_ff, a + "feed_forward_length");
    positive(hp.n_head, a + "attention.head_count");
    positive(hp.n_head_kv, a + "attention.head_count_kv");
    if (hp.n_head % hp.n_head_kv != 0) {
        throw Error(f.err("attention.head_count " + std::to_string(hp.n_head) +
                          " is not a multiple of attention.head_count_kv " + std::to_string(hp.n_head_kv)));
    }
    hp.head_dim = f.get_int_or(a + "attention.key_length", hp.n_embd / hp.n_head);
    positive(hp.head_dim, a + "attention.key_length");
    // The weights' shapes are sums and products of these (head_count x
    // key_length, 2 x feed_forward_length): bound them by the largest GGUF
    // dimension (2^40) so that none overflows.
    constexpr int64_t kMaxDim = int64_t(1) << 40;
    auto at_most_max_dim = [&](int64_t v, const std::string& what) {
        if (v > kMaxDim) {
            throw Error(f.err("metadata " + what + " = " + std::to_string(v) + " is impossibly large (at most 2^40)"));
        }
    };
    at_most_max_dim(hp.n_embd, "'" + a + "embedding_length'");
    at_most_max_dim(hp.n_ff, "'" + a + "feed_forward_length'");
    at_most_max_dim(hp.n_head, "'" + a + "attention.head_count'");
    at_most_max_dim(hp.head_dim, "'" + a + "attention.key_length'");
    if (hp.n_head > kMaxDim / hp.head_dim) {
        throw Error(f.err("attention.head_count x key_length (" + std::to_string(hp.n_head) + " x " +
                          std::to_string(hp.head_dim) + ") is impossibly large (at most 2^40)"));
    }
    if (f.get_int_or(a + "attention.value_length", hp.head_dim) != hp.head_dim) {
        throw Error(f.err("attention.value_length differs from key_length, which hearth does not support"));
    }
    hp.rope_dim = f.get_int_or(a + "rope.dimension_count", hp.head_dim);
    if (hp.rope_dim <= 0 || hp.rope_dim > hp.head_dim || hp.rope_dim % 2 != 0) {
        throw Error(f.err("rope.dimension_count " + std::to_string(hp.rope_dim) + " is invalid for head size " +
                          std::to_string(hp.head_dim)));
    }
    if (!(hp.rms_eps > 0.0f) || !(hp.rope_base > 0.0f)) {
        throw Error(f.err("layer_norm_rms_epsilon and rope.freq_base must be positive"));
    }
    if (const GGUFValue* scaling = f.find(a + "rope.scaling.type")) {
        if (scaling->type == GGUFType::STRING && scaling->s != "none") {
            throw Error(f.err("RoPE scaling '" + std::string(scaling->s) + "' is not supported yet"));
        }
    }

    // the vocabulary size is the embedding's row count (checked against the
    // tensor by the loader); the token list may say it too
    const GGUFTensor* emb = f.find_tensor("token_embd.weight");
    if (!emb) throw Error(f.err("missing tensor 'token_embd.weight'"));
    hp.n_vocab = emb->ne[1];
    hp.bos_token_id = f.get_int_or("tokenizer.ggml.bos_token_id", -1);
    hp.eos_token_id = f.get_int_or("tokenizer.ggml.eos_token_id", -1);
    return hp;
}

}  // namespace hearth
