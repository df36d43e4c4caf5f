"""An independent float64 numpy forward pass over a GGUF file, read with the
`gguf` package: a second opinion on the engine that needs neither our
converter nor transformers. Written for clarity, not speed (tiny models only)."""

from __future__ import annotations

import gguf
import numpy as np


ACT_MAX = {"q8": 127, "q16": 32767}


def fake_quantize(x: np.ndarray, act: str) -> np.ndarray:
    """What the engine's integer matmuls see of an activation row (q8a or
    q16a, csrc/gguf/quant_blocks.h): blocks of 32 scaled by amax/127 or
    amax/32767 and rounded half away from zero, computed in f32."""
    xf = x.astype(np.float32).reshape(-1, 32)
    amax = np.abs(xf).max(axis=1, keepdims=True)
    d = np.where(amax < np.float32(1e-33), np.float32(0), amax / np.float32(ACT_MAX[act])).astype(np.float32)
    inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, 1), np.float32(0)).astype(np.float32)
    v = xf * inv
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))
    return (q * d).astype(np.float64).reshape(x.shape)


class NumpyReference:
    """activations: "q8" or "q16" feeds quantized weights activations rounded
    as the engine's path of that name does, to compare at float tolerance
    (None: exact activations)."""

    def __init__(self, path, activations=None):
        r = gguf.GGUFReader(str(path))
        self.activations = activations
        Q = gguf.GGMLQuantizationType
        self.quantized = {t.name for t in r.tensors if activations and t.tensor_type in (
            Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K)}
        self.arch = bytes(r.fields["general.architecture"].parts[-1]).decode()

        def val(key, default=None):
            f = r.fields.get(f"{self.arch}.{key}")
            return default if f is None else f.parts[-1][0].item()

        self.n_layer = val("block_count")
        self.n_head = val("attention.head_count")
        self.n_head_kv = val("attention.head_count_kv", self.n_head)
        self.eps = val("attention.layer_norm_rms_epsilon")
        self.base = val("rope.freq_base", 10000.0)
        self.t = {}
        for t in r.tensors:
            shape = [int(x) for x in reversed(t.shape)]  # numpy order: rows first
            self.t[t.name] = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float64)
        self.n_embd = self.t["token_embd.weight"].shape[1]
        self.head_dim = self.n_embd // self.n_head

    def _rope(self, x, pos):
        # x: [n, heads, hd]; llama files use adjacent pairs (the converter
        # permuted Q/K), qwen2 pairs i with i + hd/2
        hd = x.shape[-1]
        inv = self.base ** (-np.arange(0, hd, 2) / hd)
        ang = pos[:, None] * inv[None, :]
        cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        if self.arch == "qwen2":
            a, b = x[..., : hd // 2], x[..., hd // 2:]
            return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)
        a, b = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = a * cos - b * sin
        out[..., 1::2] = a * sin + b * cos
        return out

    def _mm(self, x, name):
        if name in self.quantized:
            x = fake_quantize(x, self.activations)
        return x @ self.t[name].T

    def _norm(self, x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + self.eps) * w

    def logits(self, ids):
        t, n = self.t, len(ids)
        x = t["token_embd.weight"][ids]
        pos = np.arange(n, dtype=np.float64)
        hd, H, KV = self.head_dim, self.n_head, self.n_head_kv
        mask = np.triu(np.full((n, n), -np.inf), 1)
        for i in range(self.n_layer):
            p = f"blk.{i}."
            h = self._norm(x, t[p + "attn_norm.weight"])
            q, k, v = (self._mm(h, p + f"attn_{c}.weight") + t.get(p + f"attn_{c}.bias", 0.0) for c in "qkv")
            q = self._rope(q.reshape(n, H, hd), pos)
            k = self._rope(k.reshape(n, KV, hd), pos)
            v = v.reshape(n, KV, hd)
            k, v = np.repeat(k, H // KV, axis=1), np.repeat(v, H // KV, axis=1)
            s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = np.einsum("hqk,khd->qhd", s, v).reshape(n, H * hd)
            x = x + self._mm(a, p + "attn_output.weight")
            h = self._norm(x, t[p + "ffn_norm.weight"])
            g = self._mm(h, p + "ffn_gate.weight")
            u = self._mm(h, p + "ffn_up.weight")
            x = x + self._mm(g / (1 + np.exp(-g)) * u, p + "ffn_down.weight")
        x = self._norm(x, t["output_norm.weight"])
        return self._mm(x, "output.weight" if "output.weight" in t else "token_embd.weight")
