// The architectures hearth runs, as data: what differs between them is a row
// in this table, not a copy of the forward pass (llama.cpp's llama-arch idea).
#pragma once

#include <string>

#include "model/ops.h"

namespace hearth {

// Whether attn_q/k/v carry a .bias.
enum class QkvBias { None, Required, Optional };

struct ArchInfo {
    const char* name;      // general.architecture
    RopeStyle rope_style;  // how Q/K dimensions are paired for RoPE in the file
    QkvBias qkv_bias;
    bool qk_norm;          // attn_q_norm / attn_k_norm: RMSNorm of each head of Q and K before RoPE
    bool post_norms;       // post_attention_norm / post_ffw_norm: RMSNorm of each block's output before its residual add
    bool fused_gate_up;    // ffn_up holds the gate's rows then the up's (2 x n_ff rows), no ffn_gate
    bool fused_qkv;        // attn_qkv (and its bias) holds Q's rows, then K's, then V's (any
                           // architecture reads an attn_qkv its file has; these require it)
};

// The entry for general.architecture, or a clear error listing the supported ones.
const ArchInfo& find_arch(const std::string& name, const std::string& file);

}  // namespace hearth
