"""hearth-convert -t q4_k_m | q5_k_m | q6_k | q3_k_m | q2_k: llama-quantize's
mixes and quantizers. With llama-cpp-python present, the files equal, byte
for byte, what llama.cpp's own quantizer makes of our f32 file (types,
data, file type), and llama.cpp runs them; always, hearth runs them within
each mix's expected distance of the f32 model."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
pytest.importorskip("torch")
pytest.importorskip("transformers")

from gguf import GGMLQuantizationType as QT  # noqa: E402

from helpers.hf_models import make_tiny_model  # noqa: E402
from hearthlm import LLM  # noqa: E402
from hearthlm.convert import convert  # noqa: E402
from hearthlm.convert.k_mix import KMix, use_more_bits  # noqa: E402

MIXES = ["q4_k_m", "q5_k_m", "q6_k", "q3_k_m", "q2_k"]
FTYPES = {"q2_k": 10, "q3_k_m": 12, "q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
PROMPT = [5, 17, 200, 3, 99, 42, 7, 128, 255, 0, 64, 31]
# max |logit - f32 logit| / max |f32 logit| on the tiny random model, which
# amplifies weight rounding (measured q6_k 0.073, q5_k_m 0.157, q4_k_m 0.262,
# q3_k_m 0.416, q2_k 0.837; bounds 1.5x)
MAX_REL = {"q6_k": 0.11, "q5_k_m": 0.24, "q4_k_m": 0.4, "q3_k_m": 0.62, "q2_k": 1.25}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Rows of 256 (attention) and of 320 (ffn_down: not whole super-blocks,
    so the fallbacks show), 8 layers (use_more_bits picks some), GQA 4 (q2_k's
    attn_v), untied output."""
    d = tmp_path_factory.mktemp("kconv")
    folder = make_tiny_model(d / "hf", "llama", hidden=256, layers=8, heads=8, kv_heads=2, ffn=320, vocab=512,
                             seed=5, init_std=0.05)
    f32 = convert(folder, d / "f32.gguf", "f32", progress=False)
    files = {m: convert(folder, d / f"{m}.gguf", m, progress=False) for m in MIXES}
    return d, f32, files


def types_of(path):
    return {t.name: t.tensor_type for t in gguf.GGUFReader(str(path)).tensors}


@pytest.mark.parametrize("mix", MIXES)
def test_k_mix_types_follow_llama_cpp_rules(tiny, mix):
    _, _, files = tiny
    types = types_of(files[mix])
    base = {"q2_k": QT.Q2_K, "q3_k_m": QT.Q3_K, "q4_k_m": QT.Q4_K, "q5_k_m": QT.Q5_K, "q6_k": QT.Q6_K}[mix]
    assert types["output.weight"] == QT.Q6_K and types["blk.0.attn_norm.weight"] == QT.F32
    assert types["token_embd.weight"] == base and types["blk.3.attn_q.weight"] == base
    # ffn_down rows of 320 are not whole super-blocks: llama.cpp's fallbacks
    fallback = {QT.Q2_K: QT.Q4_0, QT.Q3_K: QT.Q4_0, QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1, QT.Q6_K: QT.Q8_0}
    for i in range(8):
        assert types[f"blk.{i}.ffn_down.weight"] in fallback.values()
    if mix in ("q4_k_m", "q5_k_m"):  # more bits where use_more_bits says
        for i in range(8):
            want = QT.Q6_K if use_more_bits(i, 8) else base
            assert types[f"blk.{i}.attn_v.weight"] == want, i
            assert types[f"blk.{i}.ffn_down.weight"] == fallback[want], i
    assert gguf.GGUFReader(str(files[mix])).fields["general.file_type"].parts[-1][0] == FTYPES[mix]


def test_use_more_bits_is_llama_cpps_pattern():
    assert [i for i in range(22) if use_more_bits(i, 22)] == [0, 1, 4, 7, 10, 13, 16, 19, 20, 21]
    mix = KMix("q4_k_m", n_layer=22, n_head=32, n_head_kv=4)
    from gguf import MODEL_TENSOR as T
    assert mix.type_for(T.OUTPUT, 2048, True) == QT.Q6_K and mix.type_for(T.OUTPUT, 576, True) == QT.Q8_0
    assert mix.type_for(T.ATTN_Q, 576, False) == QT.Q5_0 and mix.type_for(T.ATTN_Q, 48, False) == QT.F16


def test_hearth_runs_k_mix_files_closer_to_f32_with_more_bits(tiny):
    _, f32, files = tiny
    want = LLM(str(f32), n_threads=2, kv_type="f32").eval(PROMPT)
    rel = {}
    for mix in MIXES:
        got = LLM(str(files[mix]), n_threads=2, kv_type="f32").eval(PROMPT)
        rel[mix] = float(np.abs(got - want).max() / np.abs(want).max())
        assert rel[mix] <= MAX_REL[mix], (mix, rel[mix])
    assert rel["q6_k"] < rel["q5_k_m"] < rel["q4_k_m"] < rel["q3_k_m"] < rel["q2_k"], rel


def llama_quantize(src, dst, mix):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama.cpp's quantizer comes with llama-cpp-python")
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + mix.upper())
    p.nthread = 2
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0


def assert_same_tensors(ours, theirs):
    a = {t.name: t for t in gguf.GGUFReader(str(ours)).tensors}
    b = {t.name: t for t in gguf.GGUFReader(str(theirs)).tensors}
    assert a.keys() == b.keys()
    for n in a:
        assert a[n].tensor_type == b[n].tensor_type, (n, a[n].tensor_type, b[n].tensor_type)
        assert np.array_equal(np.asarray(a[n].data), np.asarray(b[n].data)), f"{n} differs"


@pytest.mark.parametrize("mix", MIXES)
def test_k_mix_files_equal_llama_quantize_of_the_f32_file(tiny, mix):
    d, f32, files = tiny
    theirs = d / f"llama-{mix}.gguf"
    llama_quantize(f32, theirs, mix)
    assert_same_tensors(files[mix], theirs)


def test_llama_cpp_runs_our_q4_k_m_file_of_real_weights(smollm2_hf, tmp_path):
    """llama.cpp loads hearth-convert's Q4_K_M of SmolLM2 (tokenizer included)
    and computes what hearth computes, within the 8-bit activations'
    rounding (both engines round them)."""
    pytest.importorskip("llama_cpp")
    from helpers.llama_cpp_ref import llama_cpp_logits, logit_agreement, open_llama_cpp

    path = convert(smollm2_hf, tmp_path / "q4_k_m.gguf", "q4_k_m", progress=False)
    ids = list(range(1000, 1064))
    ours = LLM(str(path), n_threads=2, kv_type="f32", activations="q16").eval(ids)
    llm = open_llama_cpp(path, n_ctx=128)
    a = logit_agreement(llama_cpp_logits(llm, ids), ours)
    # measured: mean cosine 0.99982, top-1 62/64 (llama.cpp's 8-bit activations)
    assert a["mean_cos"] > 0.999 and a["top1_pct"] >= 90.0, a


def test_real_weights_q4_k_m_equal_llama_quantize(smollm2_hf, smollm2_f32_gguf, tmp_path):
    """SmolLM2's real weights (576-wide rows: q5_0 / q8_0 fallbacks, tied
    output): our Q4_K_M is llama.cpp's, byte for byte."""
    ours = convert(smollm2_hf, tmp_path / "ours.gguf", "q4_k_m", progress=False)
    theirs = tmp_path / "theirs.gguf"
    llama_quantize(smollm2_f32_gguf, theirs, "q4_k_m")
    assert_same_tensors(ours, theirs)
