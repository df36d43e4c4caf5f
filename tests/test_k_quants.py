"""The K-quants (q2_K ... q6_K): dequantization bit-exact with the `gguf`
package's, and every kernel set's matmul against the scalar reference (and
that against numpy), deterministic for any row split and token count.

No K-quant quantizer is needed: the blocks are random bytes with sane fp16
scales, which is every bit pattern a file can hold.
"""
import zlib

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf.quants import dequantize  # noqa: E402

core = pytest.importorskip("hearthlm._core")

from test_kernels import (ACTIVATIONS, AVAILABLE, act, activations_as_used,  # noqa: E402,F401
                          assert_bit_identical_for_any_row_split_and_token_count, assert_close_rowwise, kernel)

K_TYPES = {10: QT.Q2_K, 11: QT.Q3_K, 12: QT.Q4_K, 13: QT.Q5_K, 14: QT.Q6_K}
NAMES = {10: "q2_K", 11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K"}
BLOCK_BYTES = {10: 84, 11: 110, 12: 144, 13: 176, 14: 210}
# where each block keeps its fp16 d (and dmin), and its quant bytes
D_AT = {10: [80, 82], 11: [108], 12: [0, 2], 13: [0, 2], 14: [208]}
QUANT_BYTES = {10: [(16, 80)], 11: [(0, 96)], 12: [(16, 144)], 13: [(16, 176)], 14: [(0, 192)]}

# (rows, k, n_tokens): k = 256 * (1, 2, 3, 5, 8): an odd number of super-
# blocks leaves AVX-512 a last group of 8 lanes
SHAPES = [(1, 256, 1), (7, 512, 3), (37, 768, 5), (129, 2048, 17), (9, 256, 4), (13, 1280, 6), (5, 768, 2)]
TYPE_IDS = [NAMES[t] for t in K_TYPES]


def random_blocks(w_type, n_blocks, rng, scale=0.02):
    """Random K-quant blocks: random quants and sub-block scales, fp16 d (and
    dmin) of the given size."""
    raw = rng.integers(0, 256, size=(n_blocks, BLOCK_BYTES[w_type]), dtype=np.uint8)
    for at in D_AT[w_type]:
        d = (np.abs(rng.standard_normal(n_blocks)) * scale / 32 + 1e-5).astype(np.float16)
        raw[:, at:at + 2] = d.view(np.uint8).reshape(-1, 2)
    return raw


def k_case(w_type, shape, seed):
    rows, k, nt = shape
    rng = np.random.default_rng(seed)
    raw = random_blocks(w_type, rows * k // 256, rng).reshape(-1)
    wd = dequantize(raw.reshape(rows, -1), K_TYPES[w_type]).astype(np.float64).reshape(rows, k)
    x = rng.standard_normal((nt, k)).astype(np.float32)
    return raw, wd, x


def k_error_scale(w_type, raw, wd, xa):
    """sum_k |w x| plus the weights' constant part (the minimum, or the
    offset), which the kernels sum apart from d * sum(q x): the two may cancel."""
    rows, k = wd.shape
    zeroed = raw.reshape(rows * k // 256, -1).copy()
    for a, b in QUANT_BYTES[w_type]:
        zeroed[:, a:b] = 0
    const = dequantize(zeroed.reshape(rows, -1), K_TYPES[w_type]).astype(np.float64).reshape(rows, k)
    return np.abs(xa) @ np.abs(wd).T + np.abs(xa) @ np.abs(const).T


@pytest.mark.parametrize("w_type", K_TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("seed", range(3))
def test_dequantize_bit_exact_with_gguf(w_type, seed):
    rng = np.random.default_rng(100 + seed)
    raw = random_blocks(w_type, 12, rng, scale=[0.02, 1.0, 300.0][seed])
    want = dequantize(raw, K_TYPES[w_type]).reshape(-1)
    got = core.testing.dequantize_row(w_type, raw.reshape(-1), 12 * 256)
    assert np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32))


def cases():
    for w_type in K_TYPES:
        for shape in SHAPES:
            yield pytest.param(w_type, shape, id=f"{NAMES[w_type]}-{shape[0]}x{shape[1]}x{shape[2]}")


@pytest.mark.parametrize("w_type,shape", list(cases()))
def test_k_matmul_matches_scalar_reference_within_float_rounding(kernel, act, w_type, shape):
    rows, k, nt = shape
    raw, wd, x = k_case(w_type, shape, seed=zlib.crc32(repr((w_type, shape)).encode()))
    got = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x, 0, rows, act)
    want = core.testing.kernel_matmul("scalar", w_type, raw, rows, k, x, 0, rows, act)
    assert got.shape == (nt, rows) and np.isfinite(got).all()
    xa = activations_as_used(2, x, act)  # quantized activations, as any quantized weight takes
    assert_close_rowwise(got, want, k_error_scale(w_type, raw, wd, xa), 1e-5, f"{kernel} vs scalar")


@pytest.mark.parametrize("w_type,shape", list(cases()))
def test_k_scalar_matmul_matches_numpy_float64_reference(act, w_type, shape):
    rows, k, nt = shape
    raw, wd, x = k_case(w_type, shape, seed=1 + zlib.crc32(repr((w_type, shape)).encode()))
    got = core.testing.kernel_matmul("scalar", w_type, raw, rows, k, x, 0, rows, act)
    xa = activations_as_used(2, x, act)
    assert_close_rowwise(got, xa @ wd.T, k_error_scale(w_type, raw, wd, xa), 1e-5,
                         "scalar vs numpy(gguf.dequantize) float64")


@pytest.mark.parametrize("w_type", K_TYPES, ids=TYPE_IDS)
def test_k_matmul_bit_identical_for_any_row_split_and_token_count(kernel, act, w_type):
    rows, k, nt = 37, 768, 17
    raw, _, x = k_case(w_type, (rows, k, nt), seed=7)
    assert_bit_identical_for_any_row_split_and_token_count(kernel, act, w_type, raw, rows, k, x)


@pytest.mark.parametrize("w_type", K_TYPES, ids=TYPE_IDS)
def test_k_long_prefill_bit_identical_to_decode(kernel, w_type):
    """Across the prefill's cache-sized token chunks, on the fast path."""
    rows, k, nt = 5, 2048, 300
    raw, _, x = k_case(w_type, (rows, k, nt), seed=13)
    full = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x, 0, rows, "q8")
    for t in range(0, nt, 7):
        y = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x[t:t + 1], 0, rows, "q8")
        assert np.array_equal(y.view(np.uint32), full[t:t + 1].view(np.uint32)), f"token {t} differs"


def test_k_matmul_rejects_k_not_multiple_of_256():
    x = np.zeros((1, 96), np.float32)
    with pytest.raises(Exception, match="multiple of 256"):
        core.testing.kernel_matmul("scalar", 12, np.zeros(1000, np.uint8), 1, 96, x, 0, 1)


def test_dequantize_bit_exact_with_gguf_on_a_real_q4_k_m_file(smollm2_q4_k_m_gguf):
    """Every quantized tensor of llama.cpp's Q4_K_M of SmolLM2 (q4_K, q6_K, q5_0,
    q8_0), first rows: our reader's weights are the gguf package's."""
    r = gguf.GGUFReader(str(smollm2_q4_k_m_gguf))
    seen = set()
    for t in r.tensors:
        if t.tensor_type in (QT.F32, QT.F16):
            continue
        rows = np.asarray(t.data)[:3]
        n = int(t.shape[0])
        want = dequantize(rows, t.tensor_type).reshape(-1)
        got = core.testing.dequantize_row(int(t.tensor_type), np.ascontiguousarray(rows).reshape(-1), rows.shape[0] * n)
        assert np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32)), t.name
        seen.add(t.tensor_type.name)
    assert {"Q4_K", "Q6_K", "Q5_0", "Q8_0"} <= seen
