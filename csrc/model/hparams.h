// The hyperparameters of a model, read from the GGUF metadata under
// llama.cpp's keys ({arch}.embedding_length, ...).
#pragma once

#include <cstdint>
#include <string>

#include "model/arch.h"
#include "gguf/gguf.h"

namespace hearth {

struct HParams {
    std::string arch_name;
    const ArchInfo* arch = nullptr;
    int64_t n_vocab = 0;
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_layer = 0;
    int64_t n_ff = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;  // per head, for Q, K and V
    int64_t rope_dim = 0;  // dimensions of a head that RoPE rotates
    float rope_base = 10000.0f;
    float rms_eps = 1e-5f;
    int64_t bos_token_id = -1;
    int64_t eos_token_id = -1;
};

// Reads and checks them; throws a clear error naming the file and the key.
HParams read_hparams(const GGUFFile& f);

}  // namespace hearth
