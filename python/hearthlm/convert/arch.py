"""Per-architecture tables: Hugging Face class -> GGUF architecture, tensor names.

GGUF names come from the ``gguf`` package (``gguf.TENSOR_NAMES``), the same
table llama.cpp's converter uses, so the files load in llama.cpp.
A new architecture is one more ``ArchSpec`` entry plus what is truly new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

import gguf
import numpy as np
from gguf import MODEL_TENSOR as T

from .errors import ConvertError


@dataclass(frozen=True)
class ArchSpec:
    hf_classes: tuple[str, ...]
    arch: gguf.MODEL_ARCH
    #: llama.cpp's "normal" RoPE rotates adjacent pairs, Hugging Face rotates
    #: halves: llama permutes Q/K rows so both engines agree; qwen2 uses NEOX
    #: RoPE (halves) in llama.cpp and is written as it is.
    permute_qk: bool
    tied_default: bool = False
    #: a family that names its config keys and tensors its own way brings
    #: them to the names below (Hugging Face's Llama names) before anything else
    normalize_config: Optional[Callable[[dict], dict]] = None
    rename_tensor: Optional[Callable[[str], str]] = None

    @property
    def name(self) -> str:
        return gguf.MODEL_ARCH_NAMES[self.arch]


def _qwen_v1_config(c: dict) -> dict:
    """Qwen (v1, QWenLMHeadModel) config keys as the Llama-style ones: its
    intermediate_size counts both halves of the MLP (w1 and w2)."""
    out = dict(c)
    out["intermediate_size"] = int(c["intermediate_size"]) // 2
    out.setdefault("max_position_embeddings", c.get("seq_length"))
    out.setdefault("rms_norm_eps", c.get("layer_norm_epsilon", 1e-6))
    out.setdefault("rope_theta", c.get("rotary_emb_base", 10000.0))
    out.setdefault("num_key_value_heads", c.get("num_attention_heads"))
    out.setdefault("tie_word_embeddings", False)
    return out


_QWEN_V1_NAMES = (  # (Qwen v1 prefix or infix, Llama-style)
    ("transformer.wte.", "model.embed_tokens."),
    ("transformer.ln_f.", "model.norm."),
    ("transformer.h.", "model.layers."),
    (".ln_1.", ".input_layernorm."),
    (".ln_2.", ".post_attention_layernorm."),
    (".attn.c_attn.", ".self_attn.qkv_proj."),
    (".attn.c_proj.", ".self_attn.o_proj."),
    (".mlp.w1.", ".mlp.up_proj."),     # Qwen v1: c_proj(w1(x) * silu(w2(x))): w2 is the gate
    (".mlp.w2.", ".mlp.gate_proj."),
    (".mlp.c_proj.", ".mlp.down_proj."),
)


def _qwen_v1_name(name: str) -> str:
    for old, new in _QWEN_V1_NAMES:
        name = name.replace(old, new)
    return name


ARCHS: tuple[ArchSpec, ...] = (
    ArchSpec(("LlamaForCausalLM", "MistralForCausalLM", "LLaMAForCausalLM"), gguf.MODEL_ARCH.LLAMA, permute_qk=True),
    ArchSpec(("Qwen2ForCausalLM",), gguf.MODEL_ARCH.QWEN2, permute_qk=False),
    # Qwen3 (dense): Qwen2 without q/k/v biases, with a per-head RMSNorm of Q and K
    ArchSpec(("Qwen3ForCausalLM",), gguf.MODEL_ARCH.QWEN3, permute_qk=False),
    # GLM-4-0414: RoPE on part of each head, with adjacent pairs as the weights
    # come (llama.cpp's glm4); norms after each block; gate_up_proj fused
    ArchSpec(("Glm4ForCausalLM",), gguf.MODEL_ARCH.GLM4, permute_qk=False),
    # GLM-4-9B-chat as Hugging Face writes it: glm4 without the extra norms
    # (llama.cpp's chatglm architecture)
    ArchSpec(("GlmForCausalLM",), gguf.MODEL_ARCH.CHATGLM, permute_qk=False),
    # Qwen (v1), the seed's Qwen-1_8B-Chat: fused c_attn with bias, NEOX RoPE
    ArchSpec(("QWenLMHeadModel",), gguf.MODEL_ARCH.QWEN, permute_qk=False,
             normalize_config=_qwen_v1_config, rename_tensor=_qwen_v1_name),
)


def supported_classes() -> list[str]:
    return [c for a in ARCHS for c in a.hf_classes]


def spec_for_config(config: dict) -> ArchSpec:
    classes = config.get("architectures") or []
    if not classes:
        raise ConvertError("config.json names no architecture ('architectures' is missing); supported: "
                           + ", ".join(supported_classes()))
    for a in ARCHS:
        if classes[0] in a.hf_classes:
            return a
    raise ConvertError(f"architecture {classes[0]!r} is not supported; supported: " + ", ".join(supported_classes()))


def spec_by_name(name: str) -> ArchSpec:
    for a in ARCHS:
        if a.name == name:
            return a
    raise KeyError(name)


_GLOBAL = {
    "model.embed_tokens": T.TOKEN_EMBD,
    "model.norm": T.OUTPUT_NORM,
    "lm_head": T.OUTPUT,
}
_BLOCK = {
    "input_layernorm": T.ATTN_NORM,
    "self_attn.q_proj": T.ATTN_Q,
    "self_attn.k_proj": T.ATTN_K,
    "self_attn.v_proj": T.ATTN_V,
    "self_attn.o_proj": T.ATTN_OUT,
    "self_attn.qkv_proj": T.ATTN_QKV,  # qwen (v1): c_attn, fused
    "self_attn.q_norm": T.ATTN_Q_NORM,
    "self_attn.k_norm": T.ATTN_K_NORM,
    "post_attention_layernorm": T.FFN_NORM,
    "post_self_attn_layernorm": T.ATTN_POST_NORM,  # glm4
    "post_mlp_layernorm": T.FFN_POST_NORM,         # glm4
    "mlp.gate_up_proj": T.FFN_UP,                  # glm4: [gate; up], llama.cpp's fused ffn_up
    "mlp.gate_proj": T.FFN_GATE,
    "mlp.up_proj": T.FFN_UP,
    "mlp.down_proj": T.FFN_DOWN,
}
_BLOCK_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)\.(weight|bias)$")
_GLOBAL_RE = re.compile(r"^(.+)\.(weight|bias)$")

#: checkpoint entries that are not weights (buffers some versions save)
IGNORED_SUFFIXES = (".rotary_emb.inv_freq", ".attention.masked_bias", ".attention.bias")


def map_name(spec: ArchSpec, hf_name: str) -> tuple[T, int | None, str]:
    """HF tensor name -> (gguf tensor kind, block id, 'weight'|'bias'); ConvertError if unknown."""
    m = _BLOCK_RE.match(hf_name)
    if m:
        kind = _BLOCK.get(m.group(2))
        if kind is not None and kind in gguf.MODEL_TENSORS[spec.arch]:
            return kind, int(m.group(1)), m.group(3)
    else:
        m = _GLOBAL_RE.match(hf_name)
        if m and m.group(1) in _GLOBAL:
            return _GLOBAL[m.group(1)], None, m.group(2)
    raise ConvertError(f"tensor {hf_name!r} has no GGUF name for architecture {spec.name} "
                       f"(an unsupported variant of the model?)")


def gguf_name(kind: T, bid: int | None, suffix: str) -> str:
    return gguf.TENSOR_NAMES[kind].format(bid=bid) + "." + suffix


def qk_row_permutation(n_rows: int, n_head: int) -> np.ndarray:
    """Row order that turns HF's half-split RoPE layout into adjacent pairs.

    Within each head of ``head_dim`` rows, HF pairs row i with i + head_dim/2;
    the GGUF ``llama`` layout puts them next to each other.  Output row
    ``h*hd + 2*j + t`` is input row ``h*hd + t*hd/2 + j``: llama.cpp's
    ``permute`` (reshape (n_head, 2, hd/2, ...), swap axes 1 and 2).
    """
    if n_rows % n_head or (n_rows // n_head) % 2:
        raise ConvertError(f"cannot permute Q/K: {n_rows} rows do not split into {n_head} heads of even size")
    hd = n_rows // n_head
    return np.arange(n_rows).reshape(n_head, 2, hd // 2).swapaxes(1, 2).reshape(-1)
