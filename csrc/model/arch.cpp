#include "model/arch.h"

#include "base/error.h"

namespace hearth {

namespace {
const ArchInfo kArchs[] = {
    // Llama 2/3, TinyLlama, Mistral-style, SmolLM: the converter permutes Q/K
    // so that the file uses adjacent-pair RoPE, as llama.cpp does.
    {"llama", RopeStyle::Normal, QkvBias::None, false, false, false, false},
    // Qwen1.5/2/2.5: biases on q/k/v, NEOX RoPE on unpermuted weights.
    {"qwen2", RopeStyle::Neox, QkvBias::Required, false, false, false, false},
    // Qwen3 (dense): no biases; each head of Q and K RMS-normalized before RoPE.
    {"qwen3", RopeStyle::Neox, QkvBias::None, true, false, false, false},
    // GLM-4-0414 (Glm4ForCausalLM): RoPE on part of each head (rope.dimension_count)
    // with adjacent pairs, as the weights come; q/k/v biases when the model has
    // them; a norm on each block's output; the gate and up projections fused.
    {"glm4", RopeStyle::Normal, QkvBias::Optional, false, true, true, false},
    // GLM-4-9B-chat in Hugging Face's form (GlmForCausalLM, llama.cpp's
    // chatglm): glm4 without the norms after the blocks; Q/K/V separate or
    // fused (attn_qkv), as the file has them.
    {"chatglm", RopeStyle::Normal, QkvBias::Optional, false, false, true, false},
    // Qwen (v1, Qwen-1_8B-Chat): Q, K and V in one tensor with its bias, NEOX RoPE.
    {"qwen", RopeStyle::Neox, QkvBias::Required, false, false, false, true},
};
}  // namespace

const ArchInfo& find_arch(const std::string& name, const std::string& file) {
    std::string supported;
    for (const ArchInfo& a : kArchs) {
        if (name == a.name) return a;
        supported += (supported.empty() ? "" : ", ") + std::string(a.name);
    }
    throw Error("file '" + file + "': architecture '" + name + "' is not supported (supported: " + supported + ")");
}

}  // namespace hearth
