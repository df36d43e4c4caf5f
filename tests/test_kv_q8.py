"""The q8_0 KV cache (kv_type="q8_0", llama.cpp's --cache-type-k/v q8_0):
what it stores is GGUF's q8_0 of each position's key and value, byte for
byte; its attention kernels do, on every set, exactly what the f32 kernels do
on the dequantized block (so converting a block once for many queries, or in
the loads for a few, gives the same bits); the engine on it keeps batch
invariance; and its answers stay close to the f16 cache's."""

from __future__ import annotations

import subprocess

import gguf
import numpy as np
import pytest
from gguf.quants import quantize

from helpers.engine_helpers import hearth_binary
from helpers.gguf_files import write_tiny_model

import hearthlm._core as core
from hearthlm import LLM, HearthError, LLMEngine, SamplingParams

B = 16
AVAILABLE = core.supported_kernels()
GREEDY = dict(temperature=0.0, ignore_eos=True)


@pytest.fixture(params=["scalar", "avx2", "avx512", "amx"])
def kernel(request):
    if request.param not in AVAILABLE:
        pytest.skip(f"kernel set {request.param} not supported by this CPU/build")
    return request.param


def positions(n, hd, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, hd)).astype(np.float32)
    x[:, :32] *= 20.0  # groups of 32 with other scales
    if n > 2:
        x[1, 32:] = 0.0  # an all-zero group: scale 0
    return x


def split_block(raw, hd, kv):
    """(quants [16, hd], scales [16, hd/32]) of a q8_0 block, position-major
    for keys too (stored a dword of 4 dimensions per key: [hd/4, 16, 4])."""
    q = raw[:B * hd].view(np.int8)
    s = raw[B * hd:].view(np.float16).astype(np.float32)
    if kv == 0:
        return q.reshape(hd // 4, B, 4).transpose(1, 0, 2).reshape(B, hd), s.reshape(hd // 32, B).T
    return q.reshape(B, hd), s.reshape(B, hd // 32)


def gguf_q8_0(x):
    """(quants [n, hd], scales [n, hd/32]) as the gguf package quantizes x."""
    n, hd = x.shape
    blocks = quantize(x, gguf.GGMLQuantizationType.Q8_0).reshape(n, hd // 32, 34)
    d = blocks[:, :, :2].copy().view(np.float16)[:, :, 0].astype(np.float32)
    q = blocks[:, :, 2:].copy().view(np.int8).reshape(n, hd)
    return q, d


def test_quantizing_is_ggufs_q8_0_halves_away_from_zero_included(kernel):
    # a group whose scale is 1: halves land exactly on .5
    ties = np.array([127, -127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5, -126.5, 0.49999997, -0.49999997] + [0] * 20,
                    np.float32)
    rng = np.random.default_rng(0)
    x = np.concatenate([ties, rng.standard_normal(32 * 50).astype(np.float32) * rng.choice([1e-3, 1, 300], 32 * 50),
                        np.zeros(32, np.float32)])
    q, d = core.testing.kernel_quantize_kv_q8_0(kernel, x)
    want_q, want_d = gguf_q8_0(x.reshape(1, -1))
    assert np.array_equal(q, want_q[0]) and np.array_equal(d, want_d[0])
    assert q[:12].tolist() == [127, -127, 1, -1, 2, -2, 3, -3, 127, -127, 0, 0]


def test_a_broken_value_makes_its_groups_scale_nan_or_inf_as_f16_would_keep_it(kernel):
    x = np.ones(96, np.float32)
    x[3], x[40] = np.nan, np.inf
    q, d = core.testing.kernel_quantize_kv_q8_0(kernel, x)
    assert (q[:64] == 0).all() and np.isnan(d[0]) and np.isinf(d[1])  # dequantized: NaN, as an f16 cache holds it
    assert (q[64:] == 127).all() and d[2] == np.float32(np.float16(1 / 127))


def test_a_group_too_small_for_an_f16_scale_stores_zeros(kernel):
    x = np.full(32, 1e-38, np.float32)  # 1 / d overflows a float
    x[::2] *= -1
    q, d = core.testing.kernel_quantize_kv_q8_0(kernel, x)
    assert (q == 0).all() and d[0] == 0.0


def test_every_set_quantizes_to_the_scalar_references_bytes(kernel):
    # groups of every scale from subnormal to huge, values on and near the
    # halves, signed zeros, and groups broken by a NaN or an inf
    if kernel == "scalar":
        pytest.skip("the reference itself (the tests above hold it to GGUF's q8_0)")
    rng = np.random.default_rng(7)
    groups = rng.standard_normal((400, 32)).astype(np.float32)
    groups *= np.float32(10.0) ** rng.integers(-40, 38, (400, 1)).astype(np.float32)
    groups[:40] = (rng.integers(-254, 255, (40, 32)) / 2).astype(np.float32)  # halves on a scale of about 1
    groups[:40, 0] = 127.0
    groups[40:60] = np.nextafter(groups[:20], np.float32(np.inf))
    groups[60, :] = -0.0
    groups[61, 5], groups[62, 31], groups[63, 0] = np.nan, np.inf, -np.inf
    x = groups.reshape(-1)
    q, d = core.testing.kernel_quantize_kv_q8_0(kernel, x)
    want_q, want_d = core.testing.kernel_quantize_kv_q8_0("scalar", x)
    assert np.array_equal(q, want_q)
    assert np.array_equal(d.view(np.uint32), want_d.view(np.uint32))


@pytest.mark.parametrize("hd", [32, 64, 128])
@pytest.mark.parametrize("n", [1, 7, 16])
def test_the_cache_stores_ggufs_q8_0_of_each_key_and_value(hd, n):
    keys, values = positions(n, hd, seed=hd + n), positions(n, hd, seed=1000 + hd + n)
    kraw, vraw = core.testing.kv_cache_block("q8_0", keys, values)
    kq, ks = split_block(kraw, hd, 0)
    vq, vs = split_block(vraw, hd, 1)
    want_kq, want_ks = gguf_q8_0(keys)
    want_vq, want_vs = gguf_q8_0(values)
    assert np.array_equal(kq[:n], want_kq) and np.array_equal(ks[:n], want_ks)
    assert np.array_equal(vq[:n], want_vq) and np.array_equal(vs[:n], want_vs)


def test_a_head_size_q8_0_cannot_group_is_a_clear_error():
    with pytest.raises(HearthError, match="q8_0 needs a head size that is a multiple of 32, at most 1024; this model's is 80"):
        core.testing.kv_cache_block("q8_0", np.zeros((1, 80), np.float32), np.zeros((1, 80), np.float32))
    with pytest.raises(HearthError, match="kv_type must be 'f16', 'f32' or 'q8_0', got 'q4_0'"):
        core.testing.kv_cache_block("q4_0", np.zeros((1, 64), np.float32), np.zeros((1, 64), np.float32))


def test_the_block_hooks_refuse_a_head_too_large_for_q8_0(kernel):
    # the kernels hold a block's scales in a fixed buffer: 1,024 dimensions at most, as KVCache allows
    hd = 1056
    block = np.zeros(B * hd + B * (hd // 32) * 2, np.uint8)
    with pytest.raises(HearthError, match="at most 1024, got 1056"):
        core.testing.kernel_dequantize_values_q8(kernel, block, hd, B)
    with pytest.raises(HearthError, match="at most 1024, got 1056"):
        core.testing.kernel_accumulate_group_q8(kernel, np.ones((1, B), np.float32), block,
                                                 np.zeros((1, hd), np.float32), 1)


@pytest.mark.parametrize("hd", [32, 64, 96, 128])
def test_dequantizing_values_is_exact_and_the_same_on_every_set(kernel, hd):
    _, vraw = core.testing.kv_cache_block("q8_0", positions(B, hd, seed=hd), positions(B, hd, seed=7 * hd))
    vq, vs = split_block(vraw, hd, 1)
    want_v = (vq.astype(np.float64) * np.repeat(vs, 32, axis=1)).astype(np.float32)  # exact: 8 × 11 bits
    for n in (1, 7, 16):
        got_v = core.testing.kernel_dequantize_values_q8(kernel, vraw, hd, n).reshape(n, hd)
        assert np.array_equal(got_v.view(np.uint32), want_v[:n].view(np.uint32))


@pytest.mark.parametrize("nq", [1, 2, 3, 4])
@pytest.mark.parametrize("hd", [32, 64, 96, 128])
def test_q8_0_scores_are_the_same_bits_on_every_set_and_near_the_exact_ones(kernel, hd, nq):
    """Scores against q8_0 keys take the query quantized too (as llama.cpp's
    q8_0 cache does): exact integer dot products per 32 dimensions, then the
    same float operations in every set."""
    rng = np.random.default_rng(hd * 10 + nq)
    q = rng.standard_normal((nq, hd)).astype(np.float32)
    keys = positions(B, hd, seed=hd + nq)
    kraw, _ = core.testing.kv_cache_block("q8_0", keys, positions(B, hd, seed=hd))
    qq, qd = gguf_q8_0(q)
    got = core.testing.kernel_scores_group_q8(kernel, qq.reshape(-1), qd.reshape(-1), kraw, nq)
    ref = core.testing.kernel_scores_group_q8("scalar", qq.reshape(-1), qd.reshape(-1), kraw, nq)
    assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    # a group alone gives each query the same bits
    for m in range(nq):
        alone = core.testing.kernel_scores_group_q8(kernel, qq[m], qd[m], kraw, 1)
        assert np.array_equal(alone[0].view(np.uint32), got[m].view(np.uint32))
    kq, ks = split_block(kraw, hd, 0)
    dequant_k = kq.astype(np.float64) * np.repeat(ks, 32, axis=1)
    dequant_q = qq.astype(np.float64) * np.repeat(qd, 32, axis=1)
    want = dequant_q @ dequant_k.T  # [nq, 16]
    mag = np.abs(dequant_q) @ np.abs(dequant_k.T)
    assert (np.abs(got - want) <= 1e-5 * mag + 1e-30).all()
    # and the quantization error stays small against the unquantized product
    exact = q.astype(np.float64) @ keys.astype(np.float64).T
    assert (np.abs(got - exact) <= 0.03 * np.abs(q) @ np.abs(keys.T)).all()


@pytest.mark.parametrize("nq", [1, 2, 3, 4])
@pytest.mark.parametrize("hd", [32, 64, 96, 128])
@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_q8_0_accumulation_is_the_f32_one_of_the_dequantized_values(kernel, hd, nq, n):
    rng = np.random.default_rng(hd * 100 + nq * 10 + n)
    w = rng.random((nq, n)).astype(np.float32)
    out0 = rng.standard_normal((nq, hd)).astype(np.float32)
    _, vraw = core.testing.kv_cache_block("q8_0", positions(B, hd, seed=n), positions(B, hd, seed=hd + n))
    v32 = core.testing.kernel_dequantize_values_q8(kernel, vraw, hd, n).reshape(n, hd)
    got = core.testing.kernel_accumulate_group_q8(kernel, w.reshape(-1), vraw, out0.reshape(-1), nq)
    want = core.testing.kernel_accumulate_group(kernel, w.reshape(-1), v32, out0.reshape(-1), nq)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


# ---------------------------------------------------------------- engine --

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    # head size 32, the smallest q8_0 takes
    d = tmp_path_factory.mktemp("kv_q8")
    return str(write_tiny_model(d / "llama.gguf", arch="llama", weight_type="q8_0", n_embd=128, n_head=4,
                                n_head_kv=2, n_ctx=1024, seed=5))


def greedy_with_logits(path, requests, **kw):
    e = LLMEngine(path, n_threads=2, kv_type="q8_0", **kw)
    e._engine.set_keep_logits(True)
    for rid, prompt, params in requests:
        e.add_request(rid, prompt, params)
    ids, logits = {}, {}
    while e.has_unfinished_requests():
        for o in e._engine.step():
            for c in o.outputs:
                ids.setdefault(o.request_id, []).extend(c.token_ids)
                logits.setdefault(o.request_id, []).append(c.logits)
    assert e.stats()["kv_blocks_used"] == 0
    return ids, {rid: np.concatenate(rows) for rid, rows in logits.items()}


def test_greedy_on_a_q8_0_cache_is_bit_identical_alone_and_among_others(tiny, kernel_set):
    rng = np.random.default_rng(3)
    target = rng.integers(1, 256, 45).tolist()
    others = [rng.integers(1, 256, n).tolist() for n in (5, 90, 13, 200, 64, 1, 33)]
    params = SamplingParams(max_tokens=20, **GREEDY)
    alone_ids, alone_logits = greedy_with_logits(tiny, [("t", target, params)])
    reqs = [(f"o{i}", p, SamplingParams(max_tokens=8 + 3 * i, **GREEDY)) for i, p in enumerate(others)]
    ids, logits = greedy_with_logits(tiny, reqs[:4] + [("t", target, params)] + reqs[4:], max_num_batched_tokens=64)
    assert ids["t"] == alone_ids["t"]
    assert np.array_equal(logits["t"], alone_logits["t"])


def test_the_engine_reports_q8_0_and_its_smaller_pool(tiny):
    q8 = LLMEngine(tiny, n_threads=1, kv_type="q8_0", kv_cache_tokens=1024)
    f16 = LLMEngine(tiny, n_threads=1, kv_type="f16", kv_cache_tokens=1024)
    assert q8._engine.kv_type == "q8_0"
    assert q8._engine.kv_cache_bytes * 64 == f16._engine.kv_cache_bytes * 34  # 34 bytes per 32 values against 64


def test_hearth_runs_on_a_q8_0_cache_and_says_so(tiny):
    args = ["-m", tiny, "--bench", "--prompt-tokens", 40, "--gen-tokens", 4, "--reps", 1, "--kv-type", "q8_0"]
    r = subprocess.run([hearth_binary(), *map(str, args)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "kv q8_0" in r.stdout


def test_q8_0_on_a_model_whose_heads_it_cannot_group_is_refused(tmp_path):
    path = write_tiny_model(tmp_path / "hd16.gguf", arch="llama", seed=1)  # head size 16
    with pytest.raises(HearthError, match="q8_0 needs a head size that is a multiple of 32, at most 1024; this model's is 16"):
        LLMEngine(str(path), n_threads=1, kv_type="q8_0")


def test_smollm2_on_a_q8_0_cache_stays_close_to_the_f32_cache(smollm2_gguf):
    prompt = ("The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
              "combined movable metal type with an oil-based ink and a screw press. ") * 4
    exact = LLM(str(smollm2_gguf), n_threads=2, kv_type="f32")
    q8 = LLM(str(smollm2_gguf), n_threads=2, kv_type="q8_0")
    ids = exact.tokenize(prompt)
    want, got = exact.eval(ids), q8.eval(ids)
    assert want.shape == got.shape
    # the next token after every position: the same almost everywhere, and
    # the logits within a small fraction of their spread
    agree = np.mean(want.argmax(-1) == got.argmax(-1))
    assert agree >= 0.97, agree
    assert np.max(np.abs(want - got)) <= 0.05 * np.ptp(want), np.max(np.abs(want - got))
    params = SamplingParams(max_tokens=24, temperature=0.0)
    assert q8.generate([prompt], params, use_tqdm=False)[0].outputs[0].text == \
        exact.generate([prompt], params, use_tqdm=False)[0].outputs[0].text
