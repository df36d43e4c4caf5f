"""Qwen (v1), the seed's Qwen-1_8B-Chat (QWenLMHeadModel): transformers has
no class for it, so the reference is written here from the published
equations (its modeling_qwen.py), independently of hearth: RMSNorm; c_attn
(Q, K, V with one bias); rotary embedding on rotate_half pairs; causal
attention; c_proj; MLP c_proj(w1(x) * silu(w2(x))). A tiny random model in
its own file layout goes through hearth-convert; hearth's logits and greedy
tokens must equal the reference's."""

import json

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from helpers.engine_helpers import rel_max_err  # noqa: E402
from hearthlm import LLM  # noqa: E402
from hearthlm.convert import convert  # noqa: E402

CFG = dict(hidden_size=64, num_attention_heads=4, num_hidden_layers=2, intermediate_size=2 * 96, vocab_size=512,
           layer_norm_epsilon=1e-6, rotary_emb_base=10000.0, seq_length=256, kv_channels=16, rotary_pct=1.0,
           architectures=["QWenLMHeadModel"], model_type="qwen")


def make_qwen_v1(folder, seed=5, vocab=None):
    """A random model in Qwen v1's file layout (its tensor names, its config keys)."""
    cfg = dict(CFG, vocab_size=vocab or CFG["vocab_size"])
    rng = np.random.default_rng(seed)
    E, F, V, L = cfg["hidden_size"], cfg["intermediate_size"] // 2, cfg["vocab_size"], cfg["num_hidden_layers"]
    w = {"transformer.wte.weight": rng.standard_normal((V, E)), "transformer.ln_f.weight": 1 + 0.2 * rng.standard_normal(E),
         "lm_head.weight": 0.1 * rng.standard_normal((V, E))}
    for i in range(L):
        p = f"transformer.h.{i}."
        w[p + "ln_1.weight"] = 1 + 0.2 * rng.standard_normal(E)
        w[p + "attn.c_attn.weight"] = 0.1 * rng.standard_normal((3 * E, E))
        w[p + "attn.c_attn.bias"] = 0.1 * rng.standard_normal(3 * E)
        w[p + "attn.c_proj.weight"] = 0.1 * rng.standard_normal((E, E))
        w[p + "ln_2.weight"] = 1 + 0.2 * rng.standard_normal(E)
        w[p + "mlp.w1.weight"] = 0.1 * rng.standard_normal((F, E))
        w[p + "mlp.w2.weight"] = 0.1 * rng.standard_normal((F, E))
        w[p + "mlp.c_proj.weight"] = 0.1 * rng.standard_normal((E, F))
    w = {k: v.astype(np.float32) for k, v in w.items()}
    folder.mkdir(parents=True)
    safetensors_numpy.save_file(w, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps(cfg))
    return w


def reference_logits(w, ids):
    """Qwen v1's forward in float64, from its equations."""
    E, H = CFG["hidden_size"], CFG["num_attention_heads"]
    hd, eps, base = E // H, CFG["layer_norm_epsilon"], CFG["rotary_emb_base"]
    W = {k: v.astype(np.float64) for k, v in w.items()}

    def rms(x, g):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * g

    n = len(ids)
    inv = 1.0 / base ** (np.arange(0, hd, 2) / hd)
    ang = np.outer(np.arange(n), inv)
    cos, sin = np.cos(np.concatenate([ang, ang], -1)), np.sin(np.concatenate([ang, ang], -1))

    def rotary(t):  # [n, H, hd]: t * cos + rotate_half(t) * sin
        half = np.concatenate([-t[..., hd // 2:], t[..., :hd // 2]], -1)
        return t * cos[:, None] + half * sin[:, None]

    x = W["transformer.wte.weight"][ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(CFG["num_hidden_layers"]):
        p = f"transformer.h.{i}."
        h = rms(x, W[p + "ln_1.weight"])
        qkv = h @ W[p + "attn.c_attn.weight"].T + W[p + "attn.c_attn.bias"]
        q, k, v = (qkv[:, j * E:(j + 1) * E].reshape(n, H, hd) for j in range(3))
        q, k = rotary(q), rotary(k)
        s = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(hd) + mask
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = np.einsum("hqk,khd->qhd", a, v).reshape(n, E)
        x = x + o @ W[p + "attn.c_proj.weight"].T
        h = rms(x, W[p + "ln_2.weight"])
        a1, a2 = h @ W[p + "mlp.w1.weight"].T, h @ W[p + "mlp.w2.weight"].T
        x = x + (a1 * (a2 / (1 + np.exp(-a2)))) @ W[p + "mlp.c_proj.weight"].T
    return rms(x, W["transformer.ln_f.weight"]) @ W["lm_head.weight"].T


@pytest.fixture(scope="module")
def qwen_v1(tmp_path_factory):
    d = tmp_path_factory.mktemp("qwen1")
    w = make_qwen_v1(d / "hf")
    return w, convert(d / "hf", d / "f32.gguf", "f32", progress=False), d


def test_converted_file_is_llama_cpps_qwen(qwen_v1):
    _, path, _ = qwen_v1
    r = gguf.GGUFReader(str(path))
    assert bytes(r.fields["general.architecture"].parts[-1]).decode() == "qwen"
    names = {t.name: tuple(int(x) for x in t.shape) for t in r.tensors}
    assert names["blk.0.attn_qkv.weight"] == (64, 192) and names["blk.0.attn_qkv.bias"] == (192,)
    assert names["blk.1.ffn_gate.weight"] == (64, 96) and names["blk.1.ffn_up.weight"] == (64, 96)
    assert int(r.fields["qwen.feed_forward_length"].parts[-1][0]) == 96
    assert "output.weight" in names


def test_logits_and_greedy_equal_the_reference_on_every_kernel_set(qwen_v1, kernel_set):
    w, path, _ = qwen_v1
    ids = list(np.random.default_rng(1).integers(0, 512, 40))
    want = reference_logits(w, ids)
    llm = LLM(str(path), n_threads=2, kv_type="f32")
    got = llm.eval(ids)
    assert rel_max_err(got, want) <= 1e-4
    # greedy: each next token the reference's argmax
    llm.reset()
    greedy = llm.generate_greedy(ids[:8], max_tokens=12, stop_at_eos=False)
    seq = ids[:8]
    for t in greedy:
        assert t == int(reference_logits(w, seq)[-1].argmax())
        seq = seq + [t]


def test_quantized_qwen_v1_runs_on_every_kernel_set(qwen_v1):
    from hearthlm import _core

    w, _, d = qwen_v1
    path = convert(d / "hf", d / "q8_0.gguf", "q8_0", progress=False)
    ids = list(range(3, 40))
    want = reference_logits(w, ids)
    before = _core.kernel_name()
    try:
        for name in _core.supported_kernels():
            _core.use_kernels(name)
            got = LLM(str(path), n_threads=2, kv_type="f32", activations="q16").eval(ids)
            assert rel_max_err(got, want) <= 0.03, name  # q8_0 weights
    finally:
        _core.use_kernels(before)


def test_with_its_tiktoken_vocabulary_hearth_chats_as_the_api(tmp_path):
    """qwen.tiktoken (Qwen v1's file) and its ChatML format: the converter gives
    the file Qwen's chat template, and `hearth -p` answers as LLM.chat does."""
    import subprocess

    from helpers.engine_helpers import hearth_binary
    from helpers.hf_models import copy_tokenizer, models_dir
    from hearthlm import SamplingParams

    if models_dir() is None:
        pytest.skip("HEARTH_TEST_MODELS is not set (qwen.tiktoken)")
    make_qwen_v1(tmp_path / "hf", seed=9, vocab=151936)
    copy_tokenizer("qwen-tiktoken", tmp_path / "hf")
    path = convert(tmp_path / "hf", tmp_path / "qwen1.gguf", "f32", progress=False)
    r = gguf.GGUFReader(str(path))
    assert "You are a helpful assistant." in bytes(r.fields["tokenizer.chat_template"].parts[-1]).decode()
    llm = LLM(str(path), n_threads=2, n_ctx=256)
    want = llm.chat([{"role": "user", "content": "你好"}], SamplingParams(temperature=0, max_tokens=6,
                                                                        ignore_eos=True))[0].text
    out = subprocess.run([hearth_binary(), str(path), "-p", "你好", "--temp", "0", "-n", "6", "--ignore-eos",
                          "-c", "256"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n") == want
