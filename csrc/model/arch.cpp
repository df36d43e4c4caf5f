#include "model/arch.h"

#include "base/error.h"

namespace hearth {

namespace {
const ArchInfo kArchs[] = {
    // Llama 2/3, TinyLlama, Mistral-style, SmolLM: the converter permutes Q/K
    // so that the file uses adjacent-pair RoPE, as llama.cpp does.
    {"llama", RopeStyle::Normal, false, false},
    // Qwen1.5/2/2.5: biases on q/k/v, NEOX RoPE on unpermuted weights.
    {"qwen2", RopeStyle::Neox, true, false},
    // Qwen3 (dense): no biases; each head of Q and K RMS-normalized before RoPE.
    {"qwen3", RopeStyle::Neox, false, true},
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
