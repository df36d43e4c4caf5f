// The model's tensors, found by llama.cpp's names and checked against the
// hyperparameters before anything runs. They point into the mapped file.
#pragma once

#include <deque>
#include <vector>

#include "gguf/gguf.h"
#include "model/hparams.h"

namespace hearth {

struct LayerWeights {
    const GGUFTensor* attn_norm;
    const GGUFTensor* wq;
    const GGUFTensor* wk;
    const GGUFTensor* wv;
    const GGUFTensor* bq = nullptr;  // qkv_bias architectures only
    const GGUFTensor* bk = nullptr;
    const GGUFTensor* bv = nullptr;
    const GGUFTensor* q_norm = nullptr;  // qk_norm architectures only: [head_dim]
    const GGUFTensor* k_norm = nullptr;
    const GGUFTensor* wo;
    const GGUFTensor* attn_post_norm = nullptr;  // post_norms architectures only
    const GGUFTensor* ffn_norm;
    const GGUFTensor* w_gate;
    const GGUFTensor* w_up;
    const GGUFTensor* w_down;
    const GGUFTensor* ffn_post_norm = nullptr;
};

struct ModelWeights {
    const GGUFTensor* token_embd;
    const GGUFTensor* output_norm;
    const GGUFTensor* output;  // token_embd when the embedding is tied
    std::vector<LayerWeights> layers;
    // Row ranges of fused tensors (a fused ffn_up's gate and up halves), as
    // tensors of their own; a deque, so that the layers' pointers stay put.
    std::deque<GGUFTensor> views;
};

ModelWeights load_weights(const GGUFFile& f, const HParams& hp);

}  // namespace hearth
