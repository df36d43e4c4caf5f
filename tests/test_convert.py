"""hearth-convert: tiny random HF models -> GGUF, checked with the gguf package's reader.

Real tokenizer files come from $HEARTH_TEST_MODELS (tests that need them skip
when it is unset).  No network: the hub path is tested with a mock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf import MODEL_TENSOR as MT  # noqa: E402

from helpers.hf_models import make_tiny_model  # noqa: E402
from hearthlm.convert import ConvertError, convert  # noqa: E402
from hearthlm.convert import cli, converter  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MODELS = os.environ.get("HEARTH_TEST_MODELS")
needs_models = pytest.mark.skipif(not MODELS, reason="HEARTH_TEST_MODELS is not set (real tokenizer files)")
TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0"]
QTYPE = {"f32": QT.F32, "f16": QT.F16, "bf16": QT.BF16, "q8_0": QT.Q8_0, "q4_0": QT.Q4_0}
FTYPE = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
         "bf16": gguf.LlamaFileType.MOSTLY_BF16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
         "q4_0": gguf.LlamaFileType.MOSTLY_Q4_0}
HF_TO_KIND = {
    "input_layernorm": MT.ATTN_NORM, "self_attn.q_proj": MT.ATTN_Q, "self_attn.k_proj": MT.ATTN_K,
    "self_attn.v_proj": MT.ATTN_V, "self_attn.o_proj": MT.ATTN_OUT, "post_attention_layernorm": MT.FFN_NORM,
    "mlp.gate_proj": MT.FFN_GATE, "mlp.up_proj": MT.FFN_UP, "mlp.down_proj": MT.FFN_DOWN,
}


# --- helpers ---------------------------------------------------------------

def hf_state(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update({k: v.to(torch.float32).numpy() for k, v in load_file(str(f)).items()})
    return out


def gguf_name(hf: str) -> str:
    """HF name -> GGUF name, spelled from gguf.TENSOR_NAMES (independent of the converter's table)."""
    glob = {"model.embed_tokens": MT.TOKEN_EMBD, "model.norm": MT.OUTPUT_NORM, "lm_head": MT.OUTPUT}
    stem, suffix = hf.rsplit(".", 1)
    if stem in glob:
        return gguf.TENSOR_NAMES[glob[stem]] + "." + suffix
    _, _, bid, rest = stem.split(".", 3)
    return gguf.TENSOR_NAMES[HF_TO_KIND[rest]].format(bid=int(bid)) + "." + suffix


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permute, written from its description."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def read(path: Path):
    r = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    tensors = {t.name: t for t in r.tensors}
    return fields, tensors


_SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


def read_fast(path: Path):
    """Keys and tensor infos (name -> (numpy-order shape, type)) of a GGUF file.

    gguf.GGUFReader needs ~15 s on this machine for a 150k-token vocabulary; the
    files with real Qwen vocabularies are read with this minimal parser instead
    (GGUFReader reads every other file, the same writer's layout).
    """
    import struct

    buf = Path(path).read_bytes()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, buf, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        n = take("<Q")
        pos += n
        return buf[pos - n:pos].decode("utf-8")

    def value(vtype):
        nonlocal pos
        if vtype == 8:
            return string()
        if vtype == 9:
            itype, n = take("<I"), take("<Q")
            if itype in _SCALAR:
                dt = np.dtype(_SCALAR[itype])
                arr = np.frombuffer(buf, dtype=dt, count=n, offset=pos)
                pos += n * dt.itemsize
                return arr.tolist()
            return [value(itype) for _ in range(n)]
        return take(_SCALAR[vtype])

    assert buf[:4] == b"GGUF" and struct.unpack_from("<I", buf, 4)[0] == 3
    pos = 8
    n_tensors, n_kv = take("<Q"), take("<Q")
    fields = {}
    for _ in range(n_kv):
        key = string()
        fields[key] = value(take("<I"))
    tensors = {}
    for _ in range(n_tensors):
        name = string()
        dims = [take("<Q") for _ in range(take("<I"))]
        qtype, _offset = take("<I"), take("<Q")
        tensors[name] = (tuple(reversed(dims)), QT(qtype))
    return fields, tensors


def values(t) -> np.ndarray:
    """A GGUF tensor's values as float32 in numpy order (rows, cols)."""
    shape = tuple(int(s) for s in reversed(t.shape))
    if t.tensor_type == QT.BF16:
        return (np.asarray(t.data).view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(shape)


def expected_hf_in_file(name: str, w: np.ndarray, arch: str, heads: int, kv_heads: int) -> np.ndarray:
    if arch == "llama" and ".q_proj." in name:
        return llama_permute(w, heads)
    if arch == "llama" and ".k_proj." in name:
        return llama_permute(w, kv_heads)
    return w


TOL = {QT.F32: 0.0, QT.F16: 1e-3, QT.BF16: 8e-3}


def assert_close_for_type(got: np.ndarray, want: np.ndarray, qtype: QT, name: str) -> None:
    if qtype == QT.F32:
        np.testing.assert_array_equal(got, want, err_msg=name)
        return
    if qtype in (QT.Q8_0, QT.Q4_0):
        # error bound per block, d the step: q8_0 half a step (d = amax/127) plus d's fp16
        # rounding over 127 steps; q4_0 a whole step (d = amax/8: the value of largest
        # magnitude's opposite, +8d, is clamped to 7d)
        blocks = want.reshape(-1, 32)
        amax = np.abs(blocks).max(axis=1, keepdims=True)
        err = np.abs(got.reshape(-1, 32) - blocks)
        bound = amax / 127 * 0.6 if qtype == QT.Q8_0 else amax / 8 * 1.01
        assert (err <= bound + 1e-30).all(), name
        return
    np.testing.assert_allclose(got, want, rtol=TOL[qtype], atol=1e-6, err_msg=name)


# --- fixtures --------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny models by (arch, tied), made once per module."""
    base = tmp_path_factory.mktemp("hf")
    made = {}
    for arch in ("llama", "qwen2"):
        for tie in (False, True):
            made[arch, tie] = make_tiny_model(base / f"{arch}-{'tied' if tie else 'untied'}", arch, tie=tie, seed=1)
    return made


# --- weights, names, types -------------------------------------------------

@pytest.mark.parametrize("outtype", TYPES)
@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_every_type_writes_llama_cpp_keys_names_types_and_values(tiny, tmp_path, arch, tie, outtype):
    folder = tiny[arch, tie]
    out = convert(folder, tmp_path / "m.gguf", outtype, progress=False)
    fields, tensors = read(out)
    cfg = json.loads((folder / "config.json").read_text())
    A = gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA if arch == "llama" else gguf.MODEL_ARCH.QWEN2]
    K, L = gguf.Keys, gguf.Keys.LLM
    want = {
        K.General.ARCHITECTURE: A,
        L.CONTEXT_LENGTH.format(arch=A): cfg["max_position_embeddings"],
        L.EMBEDDING_LENGTH.format(arch=A): cfg["hidden_size"],
        L.BLOCK_COUNT.format(arch=A): cfg["num_hidden_layers"],
        L.FEED_FORWARD_LENGTH.format(arch=A): cfg["intermediate_size"],
        K.Attention.HEAD_COUNT.format(arch=A): cfg["num_attention_heads"],
        K.Attention.HEAD_COUNT_KV.format(arch=A): cfg["num_key_value_heads"],
        K.Rope.FREQ_BASE.format(arch=A): 10000.0,
        K.Rope.DIMENSION_COUNT.format(arch=A): cfg["hidden_size"] // cfg["num_attention_heads"],
        L.VOCAB_SIZE.format(arch=A): cfg["vocab_size"],
        K.General.FILE_TYPE: int(FTYPE[outtype]),
        K.General.QUANTIZATION_VERSION: gguf.GGML_QUANT_VERSION,
    }
    for k, v in want.items():
        assert fields[k] == v, k
    assert fields[K.Attention.LAYERNORM_RMS_EPS.format(arch=A)] == pytest.approx(1e-6)
    assert K.General.ALIGNMENT not in fields  # the default (32)

    hf = hf_state(folder)
    assert ("lm_head.weight" in hf) == (not tie)
    expect_names = {gguf_name(n) for n in hf}
    assert set(tensors) == expect_names
    assert ("output.weight" in tensors) == (not tie)
    has_bias = any(n.endswith(".bias") for n in tensors)
    assert has_bias == (arch == "qwen2")

    qt = QTYPE[outtype]
    for hf_name, w in hf.items():
        t = tensors[gguf_name(hf_name)]
        if w.ndim == 1:
            want_type = QT.F32
        elif qt == QT.Q4_0 and (hf_name == "lm_head.weight" or (tie and hf_name == "model.embed_tokens.weight")):
            want_type = QT.Q8_0  # the output matrix keeps q8_0
        else:
            want_type = qt
        assert t.tensor_type == want_type, (hf_name, t.tensor_type.name)
        expected = expected_hf_in_file(hf_name, w, arch, cfg["num_attention_heads"], cfg["num_key_value_heads"])
        if want_type in (QT.Q8_0, QT.Q4_0):
            # byte-exact with the reference quantizer applied to the (permuted) HF weights
            assert np.array_equal(np.asarray(t.data), gguf.quants.quantize(expected, want_type)), hf_name
        assert_close_for_type(values(t), expected, want_type, hf_name)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_pure_q4_0_makes_the_output_matrix_q4_0_too(tiny, tmp_path, arch):
    for tie in (False, True):
        out = convert(tiny[arch, tie], tmp_path / f"{tie}.gguf", "q4_0", pure=True, progress=False)
        _, tensors = read(out)
        two_d = {n: t for n, t in tensors.items() if len(t.shape) == 2}
        assert {t.tensor_type for t in two_d.values()} == {QT.Q4_0}
        assert {t.tensor_type for n, t in tensors.items() if n not in two_d} == {QT.F32}


def test_q4_0_without_pure_keeps_tied_embedding_q8_0_but_untied_embedding_q4_0(tiny, tmp_path):
    _, t_tied = read(convert(tiny["qwen2", True], tmp_path / "a.gguf", "q4_0", progress=False))
    _, t_untied = read(convert(tiny["qwen2", False], tmp_path / "b.gguf", "q4_0", progress=False))
    assert t_tied["token_embd.weight"].tensor_type == QT.Q8_0
    assert t_untied["token_embd.weight"].tensor_type == QT.Q4_0
    assert t_untied["output.weight"].tensor_type == QT.Q8_0


def test_llama_qk_permutation_gives_same_attention_scores_with_adjacent_pair_rope(tiny, tmp_path):
    """HF rotates (i, i+hd/2) pairs; the file must give the same q.k with llama.cpp's adjacent pairs."""
    folder = tiny["llama", False]
    cfg = json.loads((folder / "config.json").read_text())
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    hf = hf_state(folder)
    _, tensors = read(convert(folder, tmp_path / "m.gguf", "f32", progress=False))
    wq_hf, wk_hf = hf["model.layers.0.self_attn.q_proj.weight"], hf["model.layers.0.self_attn.k_proj.weight"]
    wq_gg, wk_gg = values(tensors["blk.0.attn_q.weight"]), values(tensors["blk.0.attn_k.weight"])
    inv = 1.0 / 10000.0 ** (np.arange(0, hd, 2) / hd)
    x = np.random.default_rng(0).standard_normal((2, cfg["hidden_size"]))

    def rope_halves(v, pos):  # transformers' rotate_half
        a, b = v[: hd // 2], v[hd // 2:]
        c, s = np.cos(pos * inv), np.sin(pos * inv)
        return np.concatenate([a * c - b * s, b * c + a * s])

    def rope_pairs(v, pos):  # ggml's normal RoPE
        a, b = v[0::2], v[1::2]
        c, s = np.cos(pos * inv), np.sin(pos * inv)
        out = np.empty_like(v)
        out[0::2], out[1::2] = a * c - b * s, b * c + a * s
        return out

    group = cfg["num_attention_heads"] // cfg["num_key_value_heads"]
    for h in range(cfg["num_attention_heads"]):
        kh = h // group
        q_hf = rope_halves((wq_hf @ x[0])[h * hd:(h + 1) * hd], 5)
        k_hf = rope_halves((wk_hf @ x[1])[kh * hd:(kh + 1) * hd], 2)
        q_gg = rope_pairs((wq_gg @ x[0])[h * hd:(h + 1) * hd], 5)
        k_gg = rope_pairs((wk_gg @ x[1])[kh * hd:(kh + 1) * hd], 2)
        assert q_hf @ k_hf == pytest.approx(q_gg @ k_gg, rel=1e-9, abs=1e-9)


def test_llama_attention_biases_are_mapped_and_q_k_biases_permuted(tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "bias"
    shutil.copytree(tiny["llama", False], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["attention_bias"] = True
    (folder / "config.json").write_text(json.dumps(cfg))
    state = load_file(str(folder / "model.safetensors"))
    rng = np.random.default_rng(4)
    for i in range(cfg["num_hidden_layers"]):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            rows = state[f"model.layers.{i}.self_attn.{proj}.weight"].shape[0]
            state[f"model.layers.{i}.self_attn.{proj}.bias"] = rng.standard_normal(rows).astype(np.float32)
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    _, tensors = read(convert(folder, tmp_path / "m.gguf", "q8_0", progress=False))
    for i in range(cfg["num_hidden_layers"]):
        for proj, kind, heads in (("q_proj", "attn_q", cfg["num_attention_heads"]),
                                  ("k_proj", "attn_k", cfg["num_key_value_heads"]), ("v_proj", "attn_v", None),
                                  ("o_proj", "attn_output", None)):
            b = state[f"model.layers.{i}.self_attn.{proj}.bias"]
            t = tensors[f"blk.{i}.{kind}.bias"]
            assert t.tensor_type == QT.F32
            want = llama_permute(b, heads) if heads else b
            np.testing.assert_array_equal(values(t).reshape(-1), want)


def test_llama_tokenizer_json_with_byte_fallback_is_written_as_sentencepiece_vocab(tmp_path):
    folder = tmp_path / "tl"
    folder.mkdir()
    shutil.copy(make_tiny_model(tmp_path / "m", "llama", vocab=300) / "config.json", folder)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{b:02X}>": 3 + b for b in range(256)})
    for w in ["\u2581t", "he", "\u2581the"]:
        vocab[w.encode().decode("unicode_escape")] = len(vocab)
    tj = {"added_tokens": [{"id": i, "content": c, "special": True, "normalized": False} for c, i in
                           (("<unk>", 0), ("<s>", 1), ("</s>", 2))],
          "normalizer": None, "pre_tokenizer": None, "decoder": {"type": "Sequence", "decoders": []},
          "model": {"type": "BPE", "byte_fallback": True, "unk_token": "<unk>", "vocab": vocab,
                    "merges": ["\u2581 t".encode().decode("unicode_escape"), "h e"]}}
    (folder / "tokenizer.json").write_text(json.dumps(tj))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>",
                                                              "add_bos_token": True}))
    fields, _ = read(convert(folder, tmp_path / "v.gguf", "f16", vocab_only=True, progress=False))
    assert fields["tokenizer.ggml.model"] == "llama"
    types = fields["tokenizer.ggml.token_type"]
    assert types[:3] == [gguf.TokenType.CONTROL] * 3 and set(types[3:259]) == {gguf.TokenType.BYTE}
    assert fields["tokenizer.ggml.tokens"][259] == "\u2581t".encode().decode("unicode_escape")
    scores = fields["tokenizer.ggml.scores"]
    assert scores[259] > scores[260] > scores[261]  # piece order = merge order
    assert fields["tokenizer.ggml.bos_token_id"] == 1 and fields["tokenizer.ggml.add_bos_token"] is True


def test_row_length_not_multiple_of_32_falls_back_to_f16_with_a_warning(tmp_path, caplog):
    folder = make_tiny_model(tmp_path / "m48", "llama", hidden=48, heads=4, kv_heads=2, ffn=64, vocab=256)
    with caplog.at_level("WARNING", logger="hearth-convert"):
        _, tensors = read(convert(folder, tmp_path / "m.gguf", "q8_0", progress=False))
    assert tensors["blk.0.attn_q.weight"].tensor_type == QT.F16  # rows of 48
    assert tensors["blk.0.ffn_down.weight"].tensor_type == QT.Q8_0  # rows of 64
    assert "not a multiple of 32" in caplog.text and "F16" in caplog.text


# --- hyperparameters -------------------------------------------------------

def test_rope_base_comes_from_rope_parameters(tmp_path):
    folder = make_tiny_model(tmp_path / "m", "qwen2", rope_theta=500000.0)
    cfg = json.loads((folder / "config.json").read_text())
    assert "rope_theta" not in cfg and cfg["rope_parameters"]["rope_theta"] == 500000.0
    fields, _ = read(convert(folder, tmp_path / "m.gguf", "f16", progress=False))
    assert fields[gguf.Keys.Rope.FREQ_BASE.format(arch="qwen2")] == 500000.0


def test_rope_base_comes_from_legacy_rope_theta(tiny, tmp_path):
    folder = tmp_path / "legacy"
    shutil.copytree(tiny["llama", False], folder)
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["rope_parameters"]
    cfg["rope_theta"] = 123456.0
    (folder / "config.json").write_text(json.dumps(cfg))
    fields, _ = read(convert(folder, tmp_path / "m.gguf", "f16", progress=False))
    assert fields["llama.rope.freq_base"] == 123456.0


def test_unsupported_rope_scaling_is_refused_with_its_name(tiny, tmp_path):
    folder = tmp_path / "yarn"
    shutil.copytree(tiny["qwen2", True], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 1e6,
                              "original_max_position_embeddings": 32768}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConvertError, match="yarn"):
        convert(folder, tmp_path / "m.gguf", "f16", progress=False)
    assert not (tmp_path / "m.gguf").exists()


def test_linear_rope_scaling_writes_llama_cpp_scaling_keys(tiny, tmp_path):
    folder = tmp_path / "linear"
    shutil.copytree(tiny["llama", False], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    (folder / "config.json").write_text(json.dumps(cfg))
    fields, _ = read(convert(folder, tmp_path / "m.gguf", "f16", progress=False))
    assert fields[gguf.Keys.Rope.SCALING_TYPE.format(arch="llama")] == "linear"
    assert fields[gguf.Keys.Rope.SCALING_FACTOR.format(arch="llama")] == 2.0


# --- weight sources --------------------------------------------------------

def _tensor_bytes(path: Path) -> dict[str, bytes]:
    return {t.name: bytes(np.asarray(t.data).tobytes()) for t in gguf.GGUFReader(path).tensors}


def test_sharded_safetensors_with_index_give_the_same_tensors(tiny, tmp_path):
    from safetensors.numpy import load_file, save_file

    src = tiny["llama", False]
    folder = tmp_path / "sharded"
    folder.mkdir()
    shutil.copy(src / "config.json", folder)
    state = load_file(str(src / "model.safetensors"))
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    weight_map = {}
    for fname, part in shards.items():
        save_file({n: state[n] for n in part}, str(folder / fname), metadata={"format": "pt"})
        weight_map.update({n: fname for n in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    a = convert(src, tmp_path / "a.gguf", "q8_0", progress=False)
    b = convert(folder, tmp_path / "b.gguf", "q8_0", progress=False)
    assert _tensor_bytes(a) == _tensor_bytes(b)

    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ConvertError, match="model-00002-of-00002.safetensors"):
        convert(folder, tmp_path / "c.gguf", "q8_0", progress=False)


def test_bf16_safetensors_are_read_exactly(tmp_path):
    folder = make_tiny_model(tmp_path / "bf", "qwen2", dtype="bfloat16")
    header_len = int.from_bytes((folder / "model.safetensors").read_bytes()[:8], "little")
    header = json.loads((folder / "model.safetensors").read_bytes()[8:8 + header_len])
    assert {v["dtype"] for k, v in header.items() if k != "__metadata__"} == {"BF16"}
    hf = hf_state(folder)  # bf16 -> f32 by torch
    _, tensors = read(convert(folder, tmp_path / "m.gguf", "f32", progress=False))
    for name, w in hf.items():
        np.testing.assert_array_equal(values(tensors[gguf_name(name)]), w, err_msg=name)
    _, tb = read(convert(folder, tmp_path / "b.gguf", "bf16", progress=False))
    for name, w in hf.items():
        np.testing.assert_array_equal(values(tb[gguf_name(name)]), w, err_msg=name)


def test_pytorch_model_bin_gives_the_same_tensors_as_safetensors(tiny, tmp_path):
    from safetensors.torch import load_file

    src = tiny["qwen2", True]
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(src / "config.json", folder)
    torch.save(load_file(str(src / "model.safetensors")), folder / "pytorch_model.bin")
    a = convert(src, tmp_path / "a.gguf", "q4_0", progress=False)
    b = convert(folder, tmp_path / "b.gguf", "q4_0", progress=False)
    assert _tensor_bytes(a) == _tensor_bytes(b)


def test_pytorch_model_bin_without_torch_says_pip_install_hearthlm_torch(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    shutil.copy(tiny["qwen2", True] / "config.json", folder)
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now fails
    with pytest.raises(ConvertError, match=r"pip install hearthlm\[torch\]"):
        convert(folder, tmp_path / "m.gguf", "f16", progress=False)


# --- streaming and failure -------------------------------------------------

def test_failed_conversion_leaves_no_file_behind(tiny, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = converter.encode

    def failing(x, q):
        calls["n"] += 1
        if calls["n"] == 5:
            raise RuntimeError("disk full (simulated)")
        return real(x, q)

    monkeypatch.setattr(converter, "encode", failing)
    out = tmp_path / "out" / "m.gguf"
    out.parent.mkdir()
    with pytest.raises(RuntimeError, match="simulated"):
        convert(tiny["llama", False], out, "q8_0", progress=False)
    assert list(out.parent.iterdir()) == []


def test_conversion_streams_in_row_chunks_with_bounded_memory(tmp_path, monkeypatch):
    folder = make_tiny_model(tmp_path / "big", "llama", hidden=128, ffn=256, vocab=8192, layers=1)
    model_bytes = (folder / "model.safetensors").stat().st_size
    monkeypatch.setattr(converter, "CHUNK_BYTES", 64 * 1024)
    tracemalloc.start()
    try:
        convert(folder, tmp_path / "m.gguf", "q8_0", progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # whole-tensor buffering would need at least the embedding (4 MB f32) at once
    assert peak < model_bytes / 4, (peak, model_bytes)


# --- tokenizer ---------------------------------------------------------------

def _byte_level_tokenizer_json(folder: Path, n_merged: int = 20) -> int:
    """A small byte-level BPE tokenizer.json with GPT-2's pre-tokenizer; returns its token count."""
    from hearthlm.convert.tokenizer import token_bytes_to_string

    vocab = {token_bytes_to_string(bytes([b])): b for b in range(256)}
    merges = []
    words = ["th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed",
             "is", "it", "al", "ar"][:n_merged]
    for w in words:
        vocab[w] = len(vocab)
        merges.append(f"{w[0]} {w[1]}")
    eot = len(vocab)
    tj = {
        "version": "1.0", "normalizer": None,
        "added_tokens": [{"id": eot, "content": "<|endoftext|>", "special": True, "normalized": False,
                          "single_word": False, "lstrip": False, "rstrip": False},
                         {"id": eot + 1, "content": "<tool>", "special": False, "normalized": False,
                          "single_word": False, "lstrip": False, "rstrip": False}],
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None, "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "byte_fallback": False,
                  "vocab": vocab, "merges": merges},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tj))
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>", "add_bos_token": False,
                                                              "chat_template": "{{ messages }}"}))
    return eot + 2


def test_token_list_is_padded_to_the_embedding_rows_with_unused_pad_tokens(tmp_path):
    folder = make_tiny_model(tmp_path / "m", "qwen2", vocab=320)
    n = _byte_level_tokenizer_json(folder)
    fields, _ = read(convert(folder, tmp_path / "m.gguf", "f16", progress=False))
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == 320
    assert tokens[n:] == [f"[PAD{i}]" for i in range(n, 320)]
    assert set(types[n:]) == {gguf.TokenType.UNUSED}
    assert types[n - 2] == gguf.TokenType.CONTROL and types[n - 1] == gguf.TokenType.USER_DEFINED
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "gpt-2"
    assert fields["tokenizer.ggml.merges"][:2] == ["t h", "h e"]
    assert fields["tokenizer.ggml.eos_token_id"] == n - 2
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.chat_template"] == "{{ messages }}"


def test_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    folder = make_tiny_model(tmp_path / "m", "qwen2", vocab=256)
    _byte_level_tokenizer_json(folder)
    with pytest.raises(ConvertError, match="256 rows"):
        convert(folder, tmp_path / "m.gguf", "f16", progress=False)


def test_folder_without_tokenizer_converts_weights_with_a_warning(tiny, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="hearth-convert"):
        fields, tensors = read(convert(tiny["llama", False], tmp_path / "m.gguf", "f16", progress=False))
    assert "no tokenizer" in caplog.text
    assert "tokenizer.ggml.tokens" not in fields and "token_embd.weight" in tensors


def test_vocab_only_writes_tokenizer_and_hparams_but_no_tensors(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    shutil.copy(make_tiny_model(tmp_path / "m", "llama", vocab=300) / "config.json", folder)
    _byte_level_tokenizer_json(folder)
    assert not list(folder.glob("*.safetensors"))
    fields, tensors = read(convert(folder, tmp_path / "v.gguf", "f16", vocab_only=True, progress=False))
    assert tensors == {}
    assert len(fields["tokenizer.ggml.tokens"]) == 300
    assert read_fast(tmp_path / "v.gguf") == (fields, {})  # the test's own parser agrees with GGUFReader
    assert fields["llama.embedding_length"] == 64 and fields["general.architecture"] == "llama"


def _smollm_reference():
    return gguf.GGUFReader(Path(MODELS) / "smollm2-135m-instruct" / "SmolLM2-135M-Instruct.Q4_1.gguf")


@needs_models
def test_smollm2_tokenizer_matches_what_llama_cpp_wrote(tmp_path):
    folder = tmp_path / "smol"
    shutil.copytree(Path(MODELS) / "smollm2-135m-instruct" / "hf", folder)
    fields, tensors = read(convert(folder, tmp_path / "v.gguf", "f16", vocab_only=True, progress=False))
    ref = {k: f.contents() for k, f in _smollm_reference().fields.items()}
    keys = ["tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token",
            "tokenizer.ggml.add_space_prefix", "tokenizer.chat_template"]
    for k in keys:
        assert fields[k] == ref[k], k
    assert fields["tokenizer.ggml.pre"] == "smollm"
    for k in ["llama.context_length", "llama.embedding_length", "llama.block_count", "llama.feed_forward_length",
              "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.freq_base",
              "llama.attention.layer_norm_rms_epsilon", "llama.rope.dimension_count", "llama.vocab_size"]:
        assert fields[k] == ref[k], k


@needs_models
def test_qwen2_tokenizer_json_gives_qwen2_pre_specials_and_chat_template(tmp_path):
    folder = make_tiny_model(tmp_path / "q", "qwen2", vocab=151936, hidden=32, heads=2, kv_heads=1, ffn=32,
                             layers=1, tokenizer="qwen2")
    src = Path(MODELS) / "qwen2-tokenizer"
    fields, tensors = read_fast(convert(folder, tmp_path / "m.gguf", "f16", progress=False))
    tokens, types = fields["tokenizer.ggml.tokens"], fields["tokenizer.ggml.token_type"]
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "qwen2"
    assert len(tokens) == 151936  # 151,646 tokens padded to the embedding's rows
    assert tokens[151643:151646] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert set(types[151643:151646]) == {gguf.TokenType.CONTROL}
    assert tokens[151646] == "[PAD151646]" and set(types[151646:]) == {gguf.TokenType.UNUSED}
    assert fields["tokenizer.ggml.eos_token_id"] == 151645
    assert fields["tokenizer.ggml.padding_token_id"] == 151643
    assert fields["tokenizer.chat_template"] == (src / "chat_template.jinja").read_text(encoding="utf-8")
    tj = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    assert fields["tokenizer.ggml.merges"] == [" ".join(m) for m in tj["model"]["merges"]]
    assert tensors["token_embd.weight"] == ((151936, 32), QT.F16)


@needs_models
def test_llama2_sentencepiece_tokens_scores_and_types_match_sentencepiece(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    folder = tmp_path / "sp"
    folder.mkdir()
    shutil.copy(make_tiny_model(tmp_path / "m", "llama", vocab=32000) / "config.json", folder)
    shutil.copy(Path(MODELS) / "llama2-tokenizer" / "tokenizer.model", folder)
    fields, _ = read(convert(folder, tmp_path / "v.gguf", "f16", vocab_only=True, progress=False))
    sp = spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    n = sp.vocab_size()
    assert fields["tokenizer.ggml.model"] == "llama"
    assert fields["tokenizer.ggml.tokens"] == [sp.IdToPiece(i) for i in range(n)]
    np.testing.assert_array_equal(np.float32(fields["tokenizer.ggml.scores"]),
                                  np.float32([sp.GetScore(i) for i in range(n)]))
    types = fields["tokenizer.ggml.token_type"]
    assert types[0] == gguf.TokenType.UNKNOWN and types[1] == types[2] == gguf.TokenType.CONTROL
    assert set(types[3:259]) == {gguf.TokenType.BYTE} and types[259] == gguf.TokenType.NORMAL


@needs_models
def test_qwen_tiktoken_merges_recovered_from_ranks_equal_qwen2_tokenizer_json(tmp_path):
    folder = tmp_path / "qt"
    folder.mkdir()
    shutil.copy(Path(MODELS) / "qwen-tiktoken" / "qwen.tiktoken", folder)
    fields, _ = read_fast(convert(folder, tmp_path / "v.gguf", "f16", vocab_only=True, progress=False))
    tj = json.loads((Path(MODELS) / "qwen2-tokenizer" / "tokenizer.json").read_text(encoding="utf-8"))
    assert fields["tokenizer.ggml.model"] == "gpt2" and fields["tokenizer.ggml.pre"] == "qwen2"
    assert fields["tokenizer.ggml.merges"] == [" ".join(m) for m in tj["model"]["merges"]]
    tokens = fields["tokenizer.ggml.tokens"]
    inv = {i: t for t, i in tj["model"]["vocab"].items()}
    assert tokens[:151643] == [inv[i] for i in range(151643)]
    assert tokens[151643:151646] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tokens[151850] == "<|extra_204|>" and len(tokens) == 151851
    assert fields["tokenizer.ggml.bos_token_id"] == fields["tokenizer.ggml.eos_token_id"] == 151643


def test_pre_tokenizer_detection_rules():
    from hearthlm.convert.tokenizer import _LLAMA3_RE, _QWEN2_RE, detect_pre

    def split(rx):
        return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}}

    assert detect_pre(split(_QWEN2_RE))[0] == "qwen2"
    assert detect_pre(split(_LLAMA3_RE))[0] == "llama-bpe"
    assert detect_pre({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}]}})[0] == "smollm"
    assert detect_pre({"pre_tokenizer": {"type": "ByteLevel", "use_regex": True}})[0] == "gpt-2"
    assert detect_pre(split(r"\w+"))[0] == "default"


# --- errors and entry points ----------------------------------------------

def run_cli(*args) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "hearthlm.convert.cli", *map(str, args)], capture_output=True,
                       text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    return p.returncode, p.stderr


def test_unknown_architecture_error_names_it_and_the_supported_ones(tiny, tmp_path):
    folder = tmp_path / "gpt2"
    shutil.copytree(tiny["llama", False], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(cfg))
    code, err = run_cli(folder, "-o", tmp_path / "m.gguf")
    assert code == 1
    assert "GPT2LMHeadModel" in err and "LlamaForCausalLM" in err and "Qwen2ForCausalLM" in err
    assert "Traceback" not in err and not (tmp_path / "m.gguf").exists()


@pytest.mark.parametrize("what", ["folder", "config", "weights"])
def test_missing_inputs_give_a_clear_error_without_traceback(tiny, tmp_path, what):
    folder = tmp_path / "m"
    if what != "folder":
        shutil.copytree(tiny["qwen2", True], folder)
        (folder / ("config.json" if what == "config" else "model.safetensors")).unlink()
    code = cli.main([str(folder), "-o", str(tmp_path / "m.gguf"), "--no-progress"])
    assert code == 1
    code, err = run_cli(folder, "-o", tmp_path / "m.gguf")
    assert code == 1 and "Traceback" not in err
    assert {"folder": "no such folder", "config": "no config.json", "weights": "no weights found"}[what] in err


def test_unknown_outtype_is_rejected_with_the_choices(tiny, tmp_path):
    code, err = run_cli(tiny["llama", False], "-o", tmp_path / "m.gguf", "-t", "q5_k")
    assert code == 2 and "q5_k" in err and "q8_0" in err and "Traceback" not in err
    with pytest.raises(ConvertError, match="q4_0"):
        convert(tiny["llama", False], tmp_path / "m.gguf", "q3")


def test_help_says_which_tensor_gets_which_type():
    out = subprocess.run([sys.executable, "-m", "hearthlm.convert.cli", "--help"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}).stdout
    for needle in ["--outfile", "--outtype", "--pure", "--vocab-only", "norms and biases", "stays q8_0",
                   "multiple of 32"]:
        assert needle in out, needle


def test_convert_py_script_and_console_entry_point_both_convert(tiny, tmp_path):
    folder = tiny["qwen2", True]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.run([sys.executable, str(REPO / "convert" / "convert.py"), str(folder), "--outfile",
                        str(tmp_path / "a.gguf"), "--outtype", "q8_0"], capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    # the console script pyproject.toml declares, called as its wrapper calls it
    import tomllib

    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["hearth-convert"]
    module, func = target.split(":")
    code = f"import sys, importlib; sys.argv[0] = 'hearth-convert'; sys.exit(importlib.import_module({module!r}).{func}())"
    p = subprocess.run([sys.executable, "-c", code, str(folder), "-o", str(tmp_path / "b.gguf"), "-t", "q8_0"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert _tensor_bytes(tmp_path / "a.gguf") == _tensor_bytes(tmp_path / "b.gguf")
    installed = shutil.which("hearth-convert")
    if installed:  # when the package is installed, the real script too
        p = subprocess.run([installed, str(folder), "-o", str(tmp_path / "c.gguf"), "-t", "q8_0"],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


def test_hub_id_is_fetched_with_snapshot_download(tiny, tmp_path, monkeypatch):
    import huggingface_hub

    calls = []

    def fake_snapshot_download(repo_id, **kw):
        calls.append((repo_id, kw))
        return str(tiny["qwen2", True])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.chdir(tmp_path)
    fields, _ = read(convert("Qwen/Qwen2.5-0.5B-Instruct", tmp_path / "m.gguf", "q8_0", progress=False))
    assert calls and calls[0][0] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert "*.safetensors" in calls[0][1]["allow_patterns"]
    assert fields["general.name"] == "Qwen/Qwen2.5-0.5B-Instruct"


def test_output_file_gets_the_usual_permissions(tmp_path):
    """0666 minus the umask (0644 under 022), as any tool writes, not mkstemp's 0600."""
    folder = make_tiny_model(tmp_path / "m", "llama", vocab=256)
    old = os.umask(0o022)
    try:
        out = convert(folder, tmp_path / "a.gguf", "f16", progress=False)
    finally:
        os.umask(old)
    assert (out.stat().st_mode & 0o777) == 0o644


def test_an_output_folder_that_does_not_exist_is_refused(tmp_path):
    folder = make_tiny_model(tmp_path / "m", "llama", vocab=256)
    with pytest.raises(ConvertError, match="output folder .*missing.* does not exist"):
        convert(folder, tmp_path / "missing" / "a.gguf", "f16", progress=False)
    assert not (tmp_path / "missing").exists()
    r = subprocess.run([sys.executable, "-m", "hearthlm.convert.cli", str(folder), "-o",
                        str(tmp_path / "nope" / "b.gguf")], capture_output=True, text=True)
    assert r.returncode == 1 and "does not exist" in r.stderr
