"""hearth on the real SmolLM2-135M-Instruct weights, against transformers and
llama.cpp (llama-cpp-python) on the same files.

References: transformers fp32 (eager attention) on the f32 weights rebuilt
from llama.cpp's Q4_1 GGUF (see conftest.py), and llama.cpp on the very same
GGUF file as hearth. Needs HEARTH_TEST_MODELS (skips otherwise).

    HEARTH_TEST_MODELS=../shared/models PYTHONPATH=python pytest -s tests/test_real_model.py

`-s` shows the figures (cosine, top-1, where greedy texts part); they are also
recorded as junit properties.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest

from helpers import llama_cpp_ref as ref

N_THREADS = 2
N_CTX = 512
EOS = 2  # SmolLM2 <|endoftext|>; <|im_end|> is 2 as well in this vocabulary

# Exact-parity tolerance on f32 weights with an f32 KV cache (llama.cpp
# measures 3e-6 there; see the models README).
F32_TOL = 1e-4

# Floors for hearth, checked with or without llama.cpp installed. They sit a
# little below what hearth reaches here, which is at or above what llama.cpp
# reaches on the same files (llama-cpp-python 0.3.36, f32 KV cache; see the
# report lines printed by the tests), so without llama.cpp the tests still
# hold hearth to the comparison.
FLOORS = {
    # act -> (file, text) -> (mean cosine, top-1 %)
    # llama.cpp, f32 KV: q8_0 text 0.999132 244/256 | q4_0 text 0.919474 177/256 |
    #   q4_1 text 0.999453 240/256 | q4_1 chat 0.999017 64/64
    # (our q4_0 is re-quantized from Q4_1 values: 16 asymmetric levels onto a
    # symmetric grid loses much, on llama.cpp's side just as on ours; there the
    # weights' rounding, not the activations', decides)
    "q16": {
        # hearth, f32 KV: q8_0 text 0.999741 248/256 | q4_0 text 0.921947 175/256 |
        #   q4_1 text 1.000000 256/256 | q4_1 chat 1.000000 64/64
        ("q8_0", "text256"): (0.9995, 95.0),
        ("q4_0", "text256"): (0.91, 64.0),
        # the Q4_1 file's dequantized weights are transformers' weights: only
        # float rounding and the 16-bit activations are left
        ("q4_1", "text256"): (0.99999, 99.0),
        ("q4_1", "chat64"): (0.99999, 98.0),
        # llama.cpp's Q4_K_M of the f32 weights (llama.cpp 0.989418 226/256)
        ("q4_k_m", "text256"): (0.985, 80.0),
    },
    "q8": {
        # hearth, f32 KV: q8_0 text 0.999245 241/256 | q4_0 text 0.921229 174/256 |
        #   q4_1 text 0.999483 244/256 | q4_1 chat 0.998923 64/64 (f16 KV 0.998601 63/64)
        ("q8_0", "text256"): (0.999, 92.0),
        ("q4_0", "text256"): (0.91, 64.0),
        ("q4_1", "text256"): (0.999, 92.0),
        ("q4_1", "chat64"): (0.998, 95.0),
        # hearth q8 0.989566 (mean of the kernel sets) 219/256
        ("q4_k_m", "text256"): (0.985, 80.0),
    },
}


def _say(record_property, key, line):
    print(line)
    record_property(key, line)


def _open_hearth(LLM, path, kv_type="f32", activations="q8"):
    llm = LLM(str(path), n_threads=N_THREADS, n_ctx=N_CTX, kv_type=kv_type, activations=activations)
    assert llm.n_ctx >= N_CTX
    assert llm.n_vocab == 49152
    return llm


def _eval(llm, ids):
    llm.reset()
    out = np.asarray(llm.eval(list(ids)))
    assert out.dtype == np.float32 and out.shape == (len(ids), llm.n_vocab), (out.dtype, out.shape)
    return out


def _hearth_greedy(llm, ids, n):
    llm.reset()
    out = [int(t) for t in llm.generate_greedy(list(ids), max_tokens=n, stop_at_eos=False)]
    assert len(out) == n, out  # exactly n: EOS does not stop it here

    return out


def _decode(tok, ids):
    return tok.decode(list(ids), skip_special_tokens=False)


# ---------------------------------------------------------------------------
# the fixture itself: the f32 weights rebuilt from the GGUF are the real model
# ---------------------------------------------------------------------------

def test_rebuilt_f32_weights_answer_the_capital_of_france(hf_ref_cache, smollm2_tokenizer):
    ids = smollm2_tokenizer.encode("The capital of France is", add_special_tokens=False).ids
    new = hf_ref_cache.greedy(ids, 8, stop_at_eos=True)
    text = _decode(smollm2_tokenizer, new)
    print("transformers:", repr(text))
    assert text.strip().startswith("Paris"), text


def test_real_text_fixture_is_256_tokens_of_prose(real_text_ids, smollm2_tokenizer):
    assert len(real_text_ids) == 256
    text = _decode(smollm2_tokenizer, real_text_ids)
    assert text.startswith("The village stood at the bend of a slow river")
    assert all(0 <= t < 49152 for t in real_text_ids)


def test_q4_1_file_metadata_reads_as_the_gguf_package_reads_it(hearth_llm_cls, smollm2_gguf):
    gguf = pytest.importorskip("gguf")
    r = gguf.GGUFReader(str(smollm2_gguf))
    md = _open_hearth(hearth_llm_cls, smollm2_gguf).metadata
    keys = ["general.architecture", "llama.block_count", "llama.embedding_length",
            "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
            "llama.context_length", "tokenizer.ggml.model", "tokenizer.ggml.pre",
            "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.chat_template"]
    for k in keys:
        assert md[k] == r.fields[k].contents(), k
    for k in ("llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon"):
        assert md[k] == pytest.approx(r.fields[k].contents(), rel=1e-7), k
    assert len(md["tokenizer.ggml.tokens"]) == 49152


# ---------------------------------------------------------------------------
# exact parity: f32 file + f32 KV cache
# ---------------------------------------------------------------------------

def test_f32_logits_match_transformers_on_256_real_tokens(
        hearth_llm_cls, smollm2_f32_gguf, real_text_ids, hf_ref_cache, record_property):
    llm = _open_hearth(hearth_llm_cls, smollm2_f32_gguf, kv_type="f32")
    got = _eval(llm, real_text_ids)
    want = hf_ref_cache.logits(real_text_ids)
    a = ref.logit_agreement(got, want)
    _say(record_property, "hearth_f32", ref.fmt_agreement("hearth f32", a))
    err = np.abs(got - want).max()
    assert err <= F32_TOL * np.abs(want).max(), (
        f"max|dlogit| {err:.3e} > {F32_TOL} x max|logit| {np.abs(want).max():.2f} "
        f"(worst position {int(np.abs(got - want).max(1).argmax())})")
    assert a["top1"] == a["n"]


@pytest.mark.parametrize("prompt", ["france_chat_ids", "chat_ids", "text32"])
def test_f32_greedy_32_tokens_equal_transformers_greedy(
        request, prompt, hearth_llm_cls, smollm2_f32_gguf, real_text_ids,
        hf_ref_cache, smollm2_tokenizer):
    ids = real_text_ids[:32] if prompt == "text32" else request.getfixturevalue(prompt)
    llm = _open_hearth(hearth_llm_cls, smollm2_f32_gguf, kv_type="f32")
    got = _hearth_greedy(llm, ids, 32)
    want = hf_ref_cache.greedy(ids, 32, stop_at_eos=False)  # exactly 32, EOS included
    print(f"\n[{prompt}] transformers: {_decode(smollm2_tokenizer, want)!r}"
          f"\n[{prompt}] hearth:       {_decode(smollm2_tokenizer, got)!r}")
    assert got == want[: len(got)]


def test_f32_decode_through_the_kv_cache_agrees_with_transformers(
        hearth_llm_cls, smollm2_f32_gguf, chat_ids, hf_ref_cache):
    """Prefill the prompt, then feed the greedy tokens one at a time through
    the cache: same tokens as transformers, and each step's logits equal
    transformers' logits of the whole sequence at that position."""
    n_new = 32
    want_tokens = hf_ref_cache.greedy(chat_ids, n_new, stop_at_eos=False)
    llm = _open_hearth(hearth_llm_cls, smollm2_f32_gguf, kv_type="f32")
    llm.reset()
    rows = [np.asarray(llm.eval(list(chat_ids)))[-1]]
    got_tokens = []
    for i in range(n_new):
        tok = int(rows[-1].argmax())
        got_tokens.append(tok)
        if i + 1 < n_new:
            step = np.asarray(llm.eval([tok]))
            assert step.shape == (1, llm.n_vocab)
            rows.append(step[0])
    assert got_tokens == want_tokens
    full = hf_ref_cache.logits(list(chat_ids) + want_tokens[:-1])
    want_rows = full[len(chat_ids) - 1:]
    got_rows = np.stack(rows)
    err = np.abs(got_rows - want_rows).max()
    assert err <= F32_TOL * np.abs(want_rows).max(), err

    # reset() empties the cache: the same prompt gives the same logits again
    first = _eval(llm, chat_ids)
    again = _eval(llm, chat_ids)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first[-1], rows[0])


# ---------------------------------------------------------------------------
# quantized files: at least as close to transformers as llama.cpp is
# ---------------------------------------------------------------------------

# llama.cpp's side does not depend on hearth's activation path: computed once
# per file, text and cache type, for both paths (a few seconds each). The two
# paths of a case run one after the other, so only the last result is kept.
_llama_cpp_runs = {}


def _llama_cpp_once(key, compute):
    if key not in _llama_cpp_runs:
        _llama_cpp_runs.clear()
        _llama_cpp_runs[key] = compute()
    return _llama_cpp_runs[key]


def _llama_cpp_logits_once(path, ids, kv_type):
    def compute():
        lc = ref.open_llama_cpp(path, n_ctx=N_CTX, n_threads=N_THREADS, kv_type=kv_type)
        return ref.llama_cpp_logits(lc, ids)

    return _llama_cpp_once(("logits", str(path), tuple(int(t) for t in ids), kv_type), compute)


# Each activation path against llama.cpp on the same file.
# - q16 (the exact path: 16-bit activations where llama.cpp takes 8-bit ones):
#   mean cosine >= llama.cpp's - 1e-4 and top-1 >= llama.cpp's - 1 point. On
#   llama.cpp's own Q4_1 file, whose dequantized weights are transformers'
#   weights here, hearth is within float rounding of transformers (mean cosine
#   1.000000) while llama.cpp is at 0.9990; on our q8_0 / q4_0 files what is
#   left is the weights' own rounding.
# - q8 (the default, fast path: 8-bit activations like llama.cpp's, with f32
#   scales where ggml keeps fp16): mean cosine >= llama.cpp's - 1e-4, and
#   top-1 not significantly below llama.cpp's. At 8 bits the two engines trade
#   top-1 places at positions where transformers' top-2 margin is a few
#   hundredths (printed below), so a fixed 1-point band flips with the text;
#   instead the positions where exactly one engine is right are a sign test:
#   hearth fails when it loses more of them than chance allows (more than
#   half plus two standard deviations).
QUANT_CASES = [
    pytest.param("q8_0", "smollm2_q8_0_gguf", "real_text_ids", "text256", "f32", id="q8_0-text256-kvf32"),
    pytest.param("q4_0", "smollm2_q4_0_gguf", "real_text_ids", "text256", "f32", id="q4_0-text256-kvf32"),
    pytest.param("q4_1", "smollm2_gguf", "real_text_ids", "text256", "f32", id="q4_1-llamacpp-text256-kvf32"),
    pytest.param("q4_1", "smollm2_gguf", "chat_ids", "chat64", "f32", id="q4_1-llamacpp-chat64-kvf32"),
    pytest.param("q4_1", "smollm2_gguf", "chat_ids", "chat64", "f16", id="q4_1-llamacpp-chat64-kvf16"),
    pytest.param("q4_k_m", "smollm2_q4_k_m_gguf", "real_text_ids", "text256", "f32", id="q4_k_m-llamacpp-text256-kvf32"),
]


@pytest.mark.parametrize("act", ["q8", "q16"])
@pytest.mark.parametrize("qtype,file_fixture,ids_fixture,text,kv_type", QUANT_CASES)
def test_quantized_logits_as_close_to_transformers_as_llama_cpp(
        request, qtype, file_fixture, ids_fixture, text, kv_type, act,
        hearth_llm_cls, hf_ref_cache, record_property):
    path = request.getfixturevalue(file_fixture)
    ids = request.getfixturevalue(ids_fixture)
    want = hf_ref_cache.logits(ids)

    llm = _open_hearth(hearth_llm_cls, path, kv_type=kv_type, activations=act)
    got = _eval(llm, ids)
    h = ref.logit_agreement(got, want)
    del llm
    label = f"{qtype} {text} kv {kv_type}"
    _say(record_property, "hearth", f"\n[{label}] " + ref.fmt_agreement(f"hearth {act}", h))
    if act == "q8":
        # 8-bit activations amplify float rounding: a last-bit difference
        # that moves one activation across a rounding step (1/127 of its
        # block) changes the next layer. The kernel sets, which compute the
        # same sums in other orders, then land apart (measured on the q4_0
        # file: mean cosine 0.9184 to 0.9215). So q8 is judged by the mean
        # over the SIMD kernel sets this CPU has: the expected accuracy, not
        # one draw of the rounding. (Not the scalar set: test_kernels holds
        # every set to it, and it took 8 of a case's 12 s.)
        from hearthlm import _core

        before = _core.kernel_name()
        sets = [k for k in _core.supported_kernels() if k != "scalar"] or ["scalar"]
        cos = []
        try:
            for k in sets:
                _core.use_kernels(k)
                other = _open_hearth(hearth_llm_cls, path, kv_type=kv_type, activations=act)
                cos.append(ref.logit_agreement(_eval(other, ids), want)["mean_cos"])
                del other
        finally:
            _core.use_kernels(before)
        h_mean_cos = float(np.mean(cos))
        _say(record_property, "hearth_sets", f"[{label}] hearth q8 mean cosine per kernel set "
             f"{', '.join(f'{c:.6f}' for c in cos)}: mean {h_mean_cos:.6f}")
    else:
        h_mean_cos = h["mean_cos"]

    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        llama_cpp = None
    if llama_cpp is not None:
        theirs = _llama_cpp_logits_once(path, ids, kv_type)
        l = ref.logit_agreement(theirs, want)
        _say(record_property, "llama_cpp", f"[{label}] " + ref.fmt_agreement("llama.cpp", l))
        # where exactly one engine has transformers' top-1: how close a call was it?
        wt = want.argmax(1)
        only = [(p, "hearth" if got[p].argmax() == wt[p] else "llama.cpp")
                for p in range(len(ids)) if (got[p].argmax() == wt[p]) != (theirs[p].argmax() == wt[p])]
        if only:
            srt = np.sort(want, axis=1)
            _say(record_property, "top1_split", f"[{label}] top-1 right in one engine only: " + ", ".join(
                f"pos {p} {who} (transformers top-2 margin {srt[p, -1] - srt[p, -2]:.3f})" for p, who in only))
        # q8 on the 64-token chat: one position moves the mean by 1/64 (there
        # hearth's mean was 2.8e-4 below llama.cpp's with the f16 KV cache on
        # one kernel set): a looser band than the 1e-4 on 256 tokens
        tol = 5e-4 if (act == "q8" and len(ids) < 256) else 1e-4
        assert h_mean_cos >= l["mean_cos"] - tol, (h_mean_cos, h, l)
        if act == "q16" and qtype != "q4_k_m":
            assert h["top1_pct"] >= l["top1_pct"] - 1.0, (h, l)
        else:
            # (q4_k_m: the file's weights are a re-quantization of the
            # reference's, whose rounding decides the close top-1 places at
            # either activation path; hearth q16 equals transformers on the
            # file's own weights: test_k_quant_file_equals_transformers_...)
            lost = sum(who == "llama.cpp" for _, who in only)
            assert lost <= len(only) / 2 + 2 * np.sqrt(len(only) / 4), (lost, len(only), h, l)
    else:
        print(f"[{label}] llama-cpp-python not installed: checking hearth against fixed floors only")
    cos_floor, top1_floor = FLOORS[act][(qtype, text)]
    assert h["mean_cos"] >= cos_floor, h
    assert h["top1_pct"] >= top1_floor, h


def test_k_quant_file_equals_transformers_on_its_own_dequantized_weights(
        smollm2_q4_k_m_gguf, models_dir, real_text_ids, hearth_llm_cls, tmp_path, record_property):
    """llama.cpp's Q4_K_M file (q4_K, q6_K, q5_0, q8_0) on the exact path is
    transformers on that file's dequantized weights, within the 16-bit
    activations' rounding: the K-quant kernels compute what the blocks hold."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    folder = ref.write_hf_folder(smollm2_q4_k_m_gguf, models_dir / "smollm2-135m-instruct" / "hf", tmp_path / "hf")
    want = ref.hf_logits(ref.load_hf_model(folder), real_text_ids[:128])
    llm = _open_hearth(hearth_llm_cls, smollm2_q4_k_m_gguf, kv_type="f32", activations="q16")
    h = ref.logit_agreement(_eval(llm, real_text_ids[:128]), want)
    _say(record_property, "hearth", ref.fmt_agreement("hearth q16 on Q4_K_M vs its dequantized weights", h))
    # measured: mean cos 1.000000, top-1 128/128, max|d|/max|ref| 3.8e-4
    assert h["mean_cos"] >= 0.99999 and h["top1_pct"] >= 99.0 and h["max_abs_rel"] <= 2e-3, h


# ---------------------------------------------------------------------------
# llama.cpp reads the files our converter writes
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("file_fixture,max_rel,min_cos", [
    ("smollm2_f32_gguf", F32_TOL, 0.999999),
    ("smollm2_q8_0_gguf", None, 0.999),   # llama.cpp measured 0.99922 on 128 tokens
])
def test_llama_cpp_runs_our_converted_file(
        request, llama_cpp, file_fixture, max_rel, min_cos, real_text_ids,
        hf_ref_cache, record_property):
    path = request.getfixturevalue(file_fixture)
    ids = real_text_ids[:128]
    lc = ref.open_llama_cpp(path, n_ctx=N_CTX, n_threads=N_THREADS, kv_type="f32")
    assert lc.n_vocab() == 49152
    assert lc.metadata.get("general.architecture") == "llama"
    got = ref.llama_cpp_logits(lc, ids)
    want = hf_ref_cache.logits(ids)
    a = ref.logit_agreement(got, want)
    _say(record_property, "llama_cpp", f"\n[{path.name}] " + ref.fmt_agreement("llama.cpp", a))
    assert a["mean_cos"] >= min_cos, a
    if max_rel is not None:
        assert a["max_abs_rel"] <= max_rel, a


def test_llama_cpp_greedy_on_our_f32_file_equals_hearth(
        llama_cpp, hearth_llm_cls, smollm2_f32_gguf, france_chat_ids, smollm2_tokenizer):
    lc = ref.open_llama_cpp(smollm2_f32_gguf, n_ctx=N_CTX, n_threads=N_THREADS, kv_type="f32")
    theirs = ref.llama_cpp_greedy(lc, france_chat_ids, 32)
    llm = _open_hearth(hearth_llm_cls, smollm2_f32_gguf, kv_type="f32")
    ours = _hearth_greedy(llm, france_chat_ids, 32)
    print(f"\nllama.cpp: {_decode(smollm2_tokenizer, theirs)!r}\nhearth:    {_decode(smollm2_tokenizer, ours)!r}")
    assert ours == theirs[: len(ours)]


# ---------------------------------------------------------------------------
# report: greedy text of the Q4_1 file as llama.cpp wrote it
# ---------------------------------------------------------------------------

def _first_split(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None


@pytest.mark.parametrize("prompt", ["france_chat_ids", "chat_ids"])
def test_report_q4_1_greedy_hearth_vs_llama_cpp_vs_transformers(
        request, prompt, hearth_llm_cls, smollm2_gguf, hf_ref_cache,
        smollm2_tokenizer, record_property):
    """Reports where the greedy texts part and the near tie there; asserts
    only sane properties (quantized engines may pick either side of a tie)."""
    ids = request.getfixturevalue(prompt)
    n = 32
    tok = smollm2_tokenizer
    d = lambda t: repr(tok.decode([t]))  # noqa: E731
    seqs = {"transformers": hf_ref_cache.greedy(ids, n, stop_at_eos=False)}
    llm = _open_hearth(hearth_llm_cls, smollm2_gguf, kv_type="f16")
    seqs["hearth"] = _hearth_greedy(llm, ids, n)
    lc = None
    try:
        import llama_cpp  # noqa: F401
        lc = ref.open_llama_cpp(smollm2_gguf, n_ctx=N_CTX, n_threads=N_THREADS, kv_type="f16")
        seqs["llama.cpp"] = ref.llama_cpp_greedy(lc, ids, n)
    except ImportError:
        print("llama-cpp-python not installed: hearth vs transformers only")

    lines = [f"\n[{prompt}] Q4_1 file (llama.cpp's), default f16 KV cache, greedy {n} tokens"]
    for name, s in seqs.items():
        lines.append(f"  {name:>12}: {tok.decode(s)!r}")

    def row_after(name, prefix):
        """the engine's logits for the token after ids + prefix"""
        if name == "transformers":
            return hf_ref_cache.logits(list(ids) + list(prefix))[-1]
        if name == "hearth":
            return _eval(llm, list(ids) + list(prefix))[-1]
        return ref.llama_cpp_logits(lc, list(ids) + list(prefix))[-1]

    names = list(seqs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            k = _first_split(seqs[a], seqs[b])
            if k is None:
                lines.append(f"  {a} == {b} for all {n} tokens")
                continue
            prefix = seqs[a][:k]
            lines.append(f"  {a} vs {b}: part at token {k} (common prefix {tok.decode(prefix)!r})")
            for who in (a, b):
                t2 = ref.top2(row_after(who, prefix))
                lines.append(f"    {who:>12} top-2: {d(t2[0][0])} {t2[0][1]:.3f} | "
                             f"{d(t2[1][0])} {t2[1][1]:.3f} (margin {t2[0][1] - t2[1][1]:.3f})")
            if "transformers" not in (a, b):
                # two engines with the same prefix part only on a near tie:
                # each one's pick is among the other's top 5
                for x, y in ((a, b), (b, a)):
                    row = row_after(y, prefix)
                    assert seqs[x][k] in np.argsort(row)[::-1][:5], (x, y, k)
    report = "\n".join(lines)
    print(report)
    record_property("report", report)

    for name, s in seqs.items():
        assert len(s) == n or s[-1] == EOS, (name, s)
        assert all(0 <= t < 49152 for t in s), name
    # the first answer token is a real word on every side, never a special token
    for name, s in seqs.items():
        assert s[0] > 16, (name, s[0])


# ---------------------------------------------------------------------------
# perplexity over a fixed real text, llama.cpp's method (hearth-perplexity)
# ---------------------------------------------------------------------------

# Debian's copy of the GPL (base-files): a long fixed English text on every
# Debian machine, not in the repository.
PPL_TEXT = pathlib.Path("/usr/share/common-licenses/GPL-3")


@pytest.mark.parametrize("act", ["q8", "q16"])
def test_perplexity_within_half_a_percent_of_llama_cpp(smollm2_gguf, llama_cpp, act, record_property):
    """The issue's accuracy instrument: the same windows scored by both
    engines; hearth's perplexity at most 0.5 % above llama.cpp's. Measured on
    the whole text (14 windows of 512): q8 18.3609, q16 18.2994, llama.cpp
    18.3541."""
    if not PPL_TEXT.exists():
        pytest.skip(f"{PPL_TEXT} is not on this machine")
    from hearthlm import perplexity as P
    from hearthlm import LLM

    ids = LLM(str(smollm2_gguf), vocab_only=True).tokenize(PPL_TEXT.read_text(), add_special=False)
    h = P.hearth_perplexity(str(smollm2_gguf), ids, 512, max_chunks=4, n_threads=N_THREADS, activations=act)
    l = _llama_cpp_once(("perplexity", str(smollm2_gguf), tuple(ids), 512, 4),  # once for both paths
                        lambda: P.llama_cpp_perplexity(str(smollm2_gguf), ids, 512, max_chunks=4,
                                                       n_threads=N_THREADS))
    _say(record_property, "perplexity", f"\n[perplexity, 4 x 512] hearth {act}: {h}; llama.cpp: {l}")
    assert h.n_tokens == l.n_tokens == 4 * 255
    assert h.ppl <= l.ppl * 1.005, (h, l)
