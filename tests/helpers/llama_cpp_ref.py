"""Reference-side helpers for the real-model tests and the benchmarks.

Everything here runs code that nobody on this project wrote: the `gguf`
package (reading and dequantizing llama.cpp's file), Hugging Face
`transformers` (the fp32 reference logits and greedy text) and
`llama-cpp-python` (llama.cpp on the same GGUF file). No hearthlm code is
imported here, so the references cannot inherit a hearth bug.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
from typing import Dict, List, Optional, Sequence

import numpy as np

# ---------------------------------------------------------------------------
# GGUF (llama.cpp names) -> Hugging Face state dict
# ---------------------------------------------------------------------------

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK_NAMES = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ffn_norm": "post_attention_layernorm",
}
_BLOCK_RE = re.compile(r"^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$")


def hf_name(gguf_name: str) -> str:
    """Map a llama.cpp tensor name back to the Hugging Face Llama name."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _BLOCK_RE.match(gguf_name)
    if not m or m.group(2) not in _BLOCK_NAMES:
        raise KeyError(f"no Hugging Face name for GGUF tensor {gguf_name!r}")
    return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's converter `permute(w, n_head, n_head_kv)`.

    llama.cpp reorders each head's rows from HF's rotate-half layout
    (first half, second half) to interleaved pairs: reshape(n_head, 2, d/2)
    -> swap -> (n_head, d/2, 2). The inverse reads the rows as (n_head, d/2, 2)
    and swaps back. `n_head` is the head count of *this* matrix (n_head for q,
    n_head_kv for k)."""
    rows = w.shape[0]
    assert rows % (2 * n_head) == 0, (w.shape, n_head)
    return (w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2)
            .reshape(w.shape))


def _field(reader, key):
    f = reader.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]][0]


def gguf_to_hf_state_dict(gguf_path) -> Dict[str, np.ndarray]:
    """Dequantize every tensor of a llama.cpp `llama` GGUF to f32, undo the
    Q/K permutation and return it under Hugging Face names (numpy arrays)."""
    import gguf

    reader = gguf.GGUFReader(str(gguf_path))
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{gguf_path}: architecture {arch!r}, expected 'llama'")
    n_head = int(_field(reader, "llama.attention.head_count"))
    n_head_kv = int(_field(reader, "llama.attention.head_count_kv"))
    out: Dict[str, np.ndarray] = {}
    for t in reader.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32, copy=False)
        # GGUF shapes are ggml order (ne0 = columns); numpy's are (rows, cols)
        w = w.reshape([int(n) for n in reversed(t.shape)])
        if t.name.endswith("attn_q.weight"):
            w = unpermute_qk(w, n_head)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute_qk(w, n_head_kv)
        out[hf_name(t.name)] = np.ascontiguousarray(w)
    return out


def write_hf_folder(gguf_path, hf_src, out_dir) -> pathlib.Path:
    """Copy the weightless HF folder `hf_src` to `out_dir` and add an f32
    `model.safetensors` made from `gguf_path`. Returns `out_dir`."""
    from safetensors.numpy import save_file

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True)
    for f in pathlib.Path(hf_src).iterdir():  # copyfile: the shared folder is read-only
        if f.is_file():
            shutil.copyfile(f, out_dir / f.name)
    sd = gguf_to_hf_state_dict(gguf_path)
    cfg = json.loads((out_dir / "config.json").read_text())
    if cfg.get("tie_word_embeddings", False):
        sd.pop("lm_head.weight", None)  # tied: transformers takes embed_tokens
    save_file(sd, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    return out_dir


# ---------------------------------------------------------------------------
# transformers (the fp32 reference)
# ---------------------------------------------------------------------------

def load_hf_model(folder):
    """LlamaForCausalLM built from `folder/config.json`, fp32, eager
    attention, the state dict of `folder/model.safetensors` loaded strictly
    (every tensor present, none left over)."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig, LlamaForCausalLM

    folder = pathlib.Path(folder)
    cfg = AutoConfig.from_pretrained(folder)
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).to(torch.float32)
    sd = load_file(str(folder / "model.safetensors"))
    if cfg.tie_word_embeddings and "lm_head.weight" not in sd:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    model.load_state_dict(sd, strict=True)
    model.eval()
    if cfg.tie_word_embeddings:
        model.tie_weights()
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


def hf_logits(model, ids: Sequence[int]) -> np.ndarray:
    """transformers' fp32 logits for `ids` as numpy [len(ids), vocab]."""
    import torch

    with torch.no_grad():
        x = torch.tensor([list(ids)], dtype=torch.long)
        out = model(input_ids=x, attention_mask=torch.ones_like(x), use_cache=False)
    return out.logits[0].float().numpy().copy()


def hf_greedy(model, ids: Sequence[int], max_new_tokens: int,
              stop_at_eos: bool = True) -> List[int]:
    """`model.generate(do_sample=False)`: the new tokens. It stops after EOS
    unless `stop_at_eos=False` (then exactly `max_new_tokens` tokens)."""
    import torch

    kw = {} if stop_at_eos else {"eos_token_id": []}
    with torch.no_grad():
        x = torch.tensor([list(ids)], dtype=torch.long)
        out = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False,
                             max_new_tokens=max_new_tokens, num_beams=1,
                             temperature=None, top_p=None, top_k=None, **kw)
    return [int(t) for t in out[0, len(ids):]]


# ---------------------------------------------------------------------------
# comparing logits
# ---------------------------------------------------------------------------

def logit_agreement(test: np.ndarray, ref: np.ndarray) -> dict:
    """Row-wise agreement of two [n, vocab] logit arrays."""
    test = np.asarray(test, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert test.shape == ref.shape, (test.shape, ref.shape)
    cos = (test * ref).sum(1) / (np.linalg.norm(test, axis=1) * np.linalg.norm(ref, axis=1))
    top1 = int((test.argmax(1) == ref.argmax(1)).sum())
    return {
        "n": int(ref.shape[0]),
        "mean_cos": float(cos.mean()),
        "min_cos": float(cos.min()),
        "top1": top1,
        "top1_pct": 100.0 * top1 / ref.shape[0],
        "max_abs_rel": float(np.abs(test - ref).max() / np.abs(ref).max()),
    }


def fmt_agreement(name: str, a: dict) -> str:
    return (f"{name:>10}: mean cos {a['mean_cos']:.6f} (min {a['min_cos']:.5f}), "
            f"top-1 {a['top1']}/{a['n']} ({a['top1_pct']:.1f} %), "
            f"max|d|/max|ref| {a['max_abs_rel']:.2e}")


def top2(row: np.ndarray):
    i = np.argsort(row)[::-1][:2]
    return [(int(j), float(row[j])) for j in i]


# ---------------------------------------------------------------------------
# llama.cpp through llama-cpp-python
# ---------------------------------------------------------------------------

GGML_TYPE_F32 = 0
GGML_TYPE_F16 = 1
GGML_TYPE_Q8_0 = 8


# (hearthlm/llama_cpp_compat.py opens llama.cpp the same way for
# `hearth-perplexity --llama-cpp`: a copy, since nothing here imports hearthlm.)
def llama_cpp_extra_bufts_enabled() -> bool:
    """llama.cpp's "extra buffer types" (AMX and the repacked CPU_REPACK
    layouts) are OFF unless HEARTH_LLAMA_CPP_EXTRA_BUFTS=1.

    Why: llama-cpp-python here is built with -march=native on a CPU that
    advertises AMX, and inside this VM the first AMX instruction (`tilezero`
    in ggml_backend_amx_mul_mat) dies with SIGILL. With extra buffer types off
    llama.cpp uses its plain CPU kernels (AVX-512 / AVX2 via -march=native)."""
    return os.environ.get("HEARTH_LLAMA_CPP_EXTRA_BUFTS", "0") == "1"


def open_llama_cpp(path, *, n_ctx: int = 512, n_threads: int = 2,
                   kv_type: str = "f16", logits_all: bool = True,
                   extra_bufts: Optional[bool] = None, **kw):
    """A `llama_cpp.Llama` on `path` (imports llama_cpp: callers importorskip)."""
    import llama_cpp.llama_cpp as lc
    from llama_cpp import Llama

    if extra_bufts is None:
        extra_bufts = llama_cpp_extra_bufts_enabled()
    ggml_type = {"f32": GGML_TYPE_F32, "f16": GGML_TYPE_F16, "q8_0": GGML_TYPE_Q8_0}[kv_type]
    if kv_type == "q8_0":
        kw.setdefault("flash_attn", True)  # llama.cpp quantizes its V cache only in flash attention
    orig = lc.llama_model_default_params

    def params():
        p = orig()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = bool(extra_bufts)
        return p

    lc.llama_model_default_params = params  # Llama.__init__ reads it from here
    try:
        kw.setdefault("n_threads_batch", n_threads)
        return Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads,
                     logits_all=logits_all, verbose=False,
                     type_k=ggml_type, type_v=ggml_type, **kw)
    finally:
        lc.llama_model_default_params = orig


def llama_cpp_logits(llm, ids: Sequence[int]) -> np.ndarray:
    """Logits of `ids` evaluated from an empty cache: [len(ids), n_vocab]."""
    llm.reset()
    llm.eval(list(ids))
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def llama_cpp_greedy(llm, ids: Sequence[int], n: int, *, stop_at_eos: bool = False,
                     eos: Optional[int] = None, return_logits: bool = False):
    """Greedy decoding by argmax of llama.cpp's logits: prefill, then one
    token at a time through its KV cache. Returns new tokens (and their
    logit rows when `return_logits`)."""
    llm.reset()
    llm.eval(list(ids))
    out, rows = [], []
    for _ in range(n):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        tok = int(row.argmax())
        out.append(tok)
        rows.append(row)
        if len(out) == n or (stop_at_eos and tok == eos):
            break
        llm.eval([tok])
    return (out, np.stack(rows)) if return_logits else out
