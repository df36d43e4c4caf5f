"""Tiny random Hugging Face models for tests (converter, tokenizer, parity).

``make_tiny_model(folder, "llama" | "qwen2", ...)`` builds a
``LlamaForCausalLM`` / ``Qwen2ForCausalLM`` with ``transformers`` from a fixed
seed and saves it with ``save_pretrained`` (safetensors) into ``folder``.
Weights are drawn with a larger scale than transformers' default and the
norm weights and biases are non-trivial, so logits are far from flat and
parity tests compare something meaningful.

With ``tokenizer=`` a real tokenizer from ``$HEARTH_TEST_MODELS`` is copied
next to the weights (the vocab must then match it; see ``TOKENIZERS``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: tokenizer name -> (files under $HEARTH_TEST_MODELS, number of tokens)
TOKENIZERS = {
    "llama2": (["llama2-tokenizer/tokenizer.model"], 32000),
    "qwen2": (["qwen2-tokenizer/tokenizer.json", "qwen2-tokenizer/tokenizer_config.json",
               "qwen2-tokenizer/special_tokens_map.json", "qwen2-tokenizer/chat_template.jinja"], 151646),
    "qwen-tiktoken": (["qwen-tiktoken/qwen.tiktoken"], 151851),
    "smollm2": (["smollm2-135m-instruct/hf/tokenizer.json", "smollm2-135m-instruct/hf/tokenizer_config.json",
                 "smollm2-135m-instruct/hf/special_tokens_map.json"], 49152),
}


def models_dir() -> Path | None:
    """``$HEARTH_TEST_MODELS`` as a Path, or None when unset."""
    d = os.environ.get("HEARTH_TEST_MODELS")
    return Path(d) if d else None


def copy_tokenizer(name: str, folder: str | os.PathLike) -> int:
    """Copy a real tokenizer from $HEARTH_TEST_MODELS into ``folder``; returns its token count."""
    base = models_dir()
    if base is None:
        raise RuntimeError("HEARTH_TEST_MODELS is not set")
    files, n_tokens = TOKENIZERS[name]
    for rel in files:
        src = base / rel
        if src.is_file():
            shutil.copy(src, Path(folder) / src.name)
    return n_tokens


def make_tiny_model(folder, arch, *, seed=0, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128, vocab=1024,
                    tie=None, dtype="float32", max_position=2048, rope_theta=10000.0, tokenizer=None,
                    init_std=0.2) -> Path:
    """Save a random ``arch`` ("llama", "qwen2", "qwen3", "glm4" or "glm") model into ``folder``; returns the folder.

    ``tie`` defaults to the family's usual choice: qwen2 tied, llama untied.
    ``dtype``: "float32", "float16" or "bfloat16" (the saved safetensors dtype).
    ``init_std``: std of the random weights (transformers' default is 0.02).
    ``tokenizer``: optional name in ``TOKENIZERS``, copied from $HEARTH_TEST_MODELS
    (pass ``vocab`` >= its token count).
    """
    import torch
    from transformers import (GlmConfig, GlmForCausalLM, Glm4Config, Glm4ForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                              Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if tie is None:
        tie = arch in ("qwen2", "qwen3")
    common = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn, num_hidden_layers=layers,
                  num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=max_position,
                  rms_norm_eps=1e-6, tie_word_embeddings=tie, initializer_range=init_std,
                  rope_parameters={"rope_type": "default", "rope_theta": float(rope_theta)},
                  bos_token_id=None, eos_token_id=None, pad_token_id=None)
    if arch == "llama":
        config, cls = LlamaConfig(**common), LlamaForCausalLM
    elif arch == "qwen2":
        config, cls = Qwen2Config(**common), Qwen2ForCausalLM
    elif arch == "qwen3":  # head_dim given, as Qwen3 configs give it (their default is 128)
        config, cls = Qwen3Config(head_dim=hidden // heads, **common), Qwen3ForCausalLM
    elif arch == "glm4":  # GLM-4-0414's: RoPE on half of each head, q/k/v biases
        common["rope_parameters"] = dict(common["rope_parameters"], partial_rotary_factor=0.5)
        config, cls = Glm4Config(head_dim=hidden // heads, attention_bias=True, **common), Glm4ForCausalLM
    elif arch == "glm":  # GLM-4-9B-chat as Hugging Face writes it (llama.cpp's chatglm)
        common["rope_parameters"] = dict(common["rope_parameters"], partial_rotary_factor=0.5)
        config, cls = GlmConfig(head_dim=hidden // heads, attention_bias=True, **common), GlmForCausalLM
    else:
        raise ValueError(f"unknown arch {arch!r}")
    torch.manual_seed(seed)
    model = cls._from_config(config, attn_implementation="eager")
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed + 1)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    model = model.to(getattr(torch, dtype))
    model.eval()
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer is not None:
        copy_tokenizer(tokenizer, folder)
    return folder
