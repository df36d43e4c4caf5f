#!/usr/bin/env python3
"""Write a Hugging Face model folder with random weights in a real model's shapes.

    python bench/make_random_model.py --shape qwen2.5-0.5b /tmp/qwen05-rand
    python bench/make_random_model.py --shape tinyllama-1.1b /tmp/tinyllama-rand

Speed does not depend on the weights' values, so benchmarks use these instead
of downloaded models. The folder gets `config.json` (as transformers 5 writes
it, `rope_theta` and `rope_parameters` both) and one `model.safetensors`,
streamed tensor by tensor with numpy (no torch; memory stays at one tensor).
Weights ~ N(0, 0.02), norm weights ~ 1, biases ~ N(0, 0.02); fixed seed.

A tokenizer makes the folder convertible to a GGUF that llama.cpp also loads:
with --tokenizer-from DIR (or, by default, the matching folder of
$HEARTH_TEST_MODELS: qwen2-tokenizer/ for Qwen2.5, llama2-tokenizer/ for
TinyLlama) its tokenizer files are copied beside the weights. They are copied
into OUT_DIR only, never into the repository.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import struct
import sys

import numpy as np

SHAPES = {
    # Qwen/Qwen2.5-0.5B(-Instruct) config.json
    "qwen2.5-0.5b": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "hidden_act": "silu",
        "use_sliding_window": False,
        "sliding_window": 32768,
        "max_window_layers": 21,
        "attention_dropout": 0.0,
        "_qkv_bias": True,
        "_tokenizer": "qwen2-tokenizer",
    },
    # TinyLlama/TinyLlama-1.1B-Chat-v1.0 config.json
    "tinyllama-1.1b": {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 22,
        "num_attention_heads": 32,
        "num_key_value_heads": 4,
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "attention_dropout": 0.0,
        "_qkv_bias": False,
        "_tokenizer": "llama2-tokenizer",
    },
}

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                   "special_tokens_map.json", "chat_template.jinja", "qwen.tiktoken")


def config_for(shape: str, dtype: str) -> dict:
    spec = {k: v for k, v in SHAPES[shape].items() if not k.startswith("_")}
    spec["head_dim"] = spec["hidden_size"] // spec["num_attention_heads"]
    spec["rope_parameters"] = {"rope_type": "default", "rope_theta": spec["rope_theta"]}
    spec["rope_scaling"] = None
    spec["initializer_range"] = 0.02
    spec["use_cache"] = True
    spec["dtype"] = {"f16": "float16", "f32": "float32"}[dtype]
    return spec


def tensor_specs(shape: str):
    """(name, shape, kind) in the order transformers lists them."""
    s = SHAPES[shape]
    h, f, L = s["hidden_size"], s["intermediate_size"], s["num_hidden_layers"]
    hd = h // s["num_attention_heads"]
    q, kv = s["num_attention_heads"] * hd, s["num_key_value_heads"] * hd
    out = [("model.embed_tokens.weight", (s["vocab_size"], h), "w")]
    for i in range(L):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (h,), "norm"),
            (p + "self_attn.q_proj.weight", (q, h), "w"),
            (p + "self_attn.k_proj.weight", (kv, h), "w"),
            (p + "self_attn.v_proj.weight", (kv, h), "w"),
        ]
        if s["_qkv_bias"]:
            out += [
                (p + "self_attn.q_proj.bias", (q,), "bias"),
                (p + "self_attn.k_proj.bias", (kv,), "bias"),
                (p + "self_attn.v_proj.bias", (kv,), "bias"),
            ]
        out += [
            (p + "self_attn.o_proj.weight", (h, q), "w"),
            (p + "post_attention_layernorm.weight", (h,), "norm"),
            (p + "mlp.gate_proj.weight", (f, h), "w"),
            (p + "mlp.up_proj.weight", (f, h), "w"),
            (p + "mlp.down_proj.weight", (h, f), "w"),
        ]
    out.append(("model.norm.weight", (h,), "norm"))
    if not s["tie_word_embeddings"]:
        out.append(("lm_head.weight", (s["vocab_size"], h), "w"))
    return out


def make_tensor(rng, shape, kind, np_dtype):
    if kind == "norm":
        x = 1.0 + 0.02 * rng.standard_normal(shape, dtype=np.float32)
    else:
        x = rng.standard_normal(shape, dtype=np.float32)
        x *= 0.02
    return x.astype(np_dtype, copy=False)


def write_safetensors(path: pathlib.Path, specs, dtype: str, seed: int):
    """Stream tensors into one safetensors file (header first, then data)."""
    np_dtype = {"f16": np.float16, "f32": np.float32}[dtype]
    st_dtype = {"f16": "F16", "f32": "F32"}[dtype]
    esize = np.dtype(np_dtype).itemsize
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shp, _ in specs:
        n = int(np.prod(shp)) * esize
        header[name] = {"dtype": st_dtype, "shape": list(shp), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(hb)))
        fh.write(hb)
        for i, (name, shp, kind) in enumerate(specs):
            make_tensor(rng, shp, kind, np_dtype).tofile(fh)
            if sys.stderr.isatty():
                print(f"\r{i + 1}/{len(specs)} {name:60s}", end="", file=sys.stderr)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    os.replace(tmp, path)
    return off


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("out_dir", metavar="OUT_DIR")
    ap.add_argument("--dtype", choices=("f16", "f32"), default="f16",
                    help="weight dtype in model.safetensors (default f16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokenizer-from", metavar="DIR",
                    help="copy tokenizer files from DIR (default: the matching folder "
                         "under $HEARTH_TEST_MODELS, when set)")
    ap.add_argument("--force", action="store_true", help="overwrite OUT_DIR's files")
    a = ap.parse_args(argv)

    out = pathlib.Path(a.out_dir)
    if (out / "model.safetensors").exists() and not a.force:
        ap.error(f"{out}/model.safetensors exists (use --force)")
    out.mkdir(parents=True, exist_ok=True)

    tok_dir = a.tokenizer_from
    if tok_dir is None and os.environ.get("HEARTH_TEST_MODELS"):
        tok_dir = pathlib.Path(os.environ["HEARTH_TEST_MODELS"]) / SHAPES[a.shape]["_tokenizer"]
    copied = []
    if tok_dir is not None:
        tok_dir = pathlib.Path(tok_dir)
        if not tok_dir.is_dir():
            ap.error(f"--tokenizer-from {tok_dir}: not a directory")
        for fn in TOKENIZER_FILES:
            if (tok_dir / fn).is_file():
                shutil.copyfile(tok_dir / fn, out / fn)
                copied.append(fn)

    cfg = config_for(a.shape, a.dtype)
    (out / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": cfg["bos_token_id"], "eos_token_id": cfg["eos_token_id"]}, indent=2) + "\n")
    specs = tensor_specs(a.shape)
    nbytes = write_safetensors(out / "model.safetensors", specs, a.dtype, a.seed)
    n_params = sum(int(np.prod(s)) for _, s, _ in specs)
    print(f"{out}: {a.shape}, {n_params / 1e6:.1f} M parameters, {len(specs)} tensors, "
          f"{a.dtype}, {nbytes / 2**20:.0f} MiB; tokenizer: "
          f"{', '.join(copied) + ' from ' + str(tok_dir) if copied else 'none (weights-only GGUF)'}")


if __name__ == "__main__":
    main()
