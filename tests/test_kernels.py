"""The SIMD kernel tables against the scalar reference, and the scalar
reference against numpy (weights dequantized by the `gguf` package).

Every kernel set this CPU supports is tested; the others are skipped.
"""
import os
import shutil
import subprocess
import sys
import zlib

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as QT  # noqa: E402
from gguf.quants import dequantize, quantize  # noqa: E402

core = pytest.importorskip("hearthlm._core")

ALL_KERNELS = ["scalar", "avx2", "avx512", "amx"]
AVAILABLE = core.supported_kernels()

F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, BF16 = 0, 1, 2, 3, 6, 7, 8, 30
QUANT_TYPES = {Q8_0: QT.Q8_0, Q4_0: QT.Q4_0, Q4_1: QT.Q4_1, Q5_0: QT.Q5_0, Q5_1: QT.Q5_1}
TYPE_NAMES = {F32: "f32", F16: "f16", BF16: "bf16", Q8_0: "q8_0", Q4_0: "q4_0", Q4_1: "q4_1", Q5_0: "q5_0",
              Q5_1: "q5_1"}
ALL_TYPES = [F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1]

# (rows, k, n_tokens): odd row counts, k = 32 * odd, odd token counts; the
# blocks of a row's last group of 16 (AVX-512) or 8 (AVX2) take every width:
# 1, 2 (k = 576 is SmolLM2's), 3 (4 lanes), 7, 5 (8 lanes),
# 16 (k = 1024, whole groups)
SHAPES = [(1, 32, 1), (7, 96, 3), (37, 544, 5), (129, 2080, 17), (129, 32, 17),
          (1, 2080, 5), (7, 544, 1), (37, 96, 17), (37, 736, 5), (7, 1184, 3), (9, 1024, 4),
          (13, 576, 6), (5, 64, 7)]
# float weights take any k: tails shorter than a SIMD vector
FLOAT_ONLY_SHAPES = [(5, 7, 3), (7, 33, 5), (37, 541, 17), (3, 1, 2)]
DATA = ["normal", "outliers", "zero_blocks"]


ACTIVATIONS = ["q8", "q16"]  # the quantized matmuls' fast and exact activation paths
ACT_MAX = {"q8": 127, "q16": 32767}


@pytest.fixture(params=ACTIVATIONS)
def act(request):
    return request.param


@pytest.fixture(params=ALL_KERNELS)
def kernel(request):
    if request.param not in AVAILABLE:
        pytest.skip(f"kernel set {request.param} not supported by this CPU/build")
    return request.param


# ------------------------------------------------------------------ data --

def make_data(kind, shape, rng):
    a = rng.standard_normal(shape).astype(np.float32)
    if kind == "outliers":
        mask = rng.random(shape) < 0.01
        a[mask] *= 200.0
    elif kind == "zero_blocks":
        flat = a.reshape(-1)
        n_blocks = flat.size // 32
        for b in range(0, n_blocks, 3):  # every third block of 32 all zero
            flat[b * 32:(b + 1) * 32] = 0.0
        if flat.size % 32:
            flat[-(flat.size % 32):] = 0.0
    return a


def f32_to_bf16_bits(a):
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def bf16_bits_to_f32(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def make_weights(w_type, w):
    """GGUF row bytes (uint8, flat) and the float64 weights they hold."""
    if w_type == F32:
        raw = np.ascontiguousarray(w, dtype=np.float32)
        return raw.view(np.uint8).reshape(-1), raw.astype(np.float64)
    if w_type == F16:
        raw = w.astype(np.float16)
        return raw.view(np.uint8).reshape(-1), raw.astype(np.float64)
    if w_type == BF16:
        raw = f32_to_bf16_bits(w)
        return raw.view(np.uint8).reshape(-1), bf16_bits_to_f32(raw).astype(np.float64)
    qt = QUANT_TYPES[w_type]
    raw = quantize(w, qt)
    return np.ascontiguousarray(raw).view(np.uint8).reshape(-1), dequantize(raw, qt).astype(np.float64)


def np_round_half_away(v):
    a = np.abs(v)
    fl = np.floor(a)
    return np.sign(v) * (fl + np.floor(2 * (a - fl)))


def numpy_quantize_activations(x, act):
    """q8a / q16a blocks computed in numpy float32: (d [nb], sum [nb], qs [nb, 32])."""
    xb = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(xb).max(axis=1)
    d = np.where(amax < np.float32(1e-33), np.float32(0), amax / np.float32(ACT_MAX[act])).astype(np.float32)
    with np.errstate(divide="ignore"):
        idv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np_round_half_away((xb * idv[:, None]).astype(np.float32)).astype(np.int32)
    return d, q.sum(axis=1).astype(np.int32), q.astype(np.int16 if act == "q16" else np.int8)


def activations_as_used(w_type, x, act):
    """The activations the matmul really multiplies: x, or its q8a / q16a dequantized."""
    if w_type not in QUANT_TYPES:
        return x.astype(np.float64)
    out = np.empty(x.shape, dtype=np.float64)
    for t in range(x.shape[0]):
        d, _, qs = numpy_quantize_activations(x[t], act)
        out[t] = (qs.astype(np.float64) * d.astype(np.float64)[:, None]).reshape(-1)
    return out


def case(w_type, shape, data, seed):
    rows, k, nt = shape
    rng = np.random.default_rng(seed)
    w = make_data(data, (rows, k), rng)
    x = make_data(data, (nt, k), rng)
    raw, wd = make_weights(w_type, w)
    return raw, wd, x


def error_scale(w_type, raw, wd, xa):
    """sum_k |w x|: the scale of the float rounding error of one output. For
    q4_1 and q5_1 the kernels (as ggml's) compute d*sum(q x) + m*sum(x) per
    block, two terms that may cancel, so add sum_blocks |m| * sum |x| too."""
    mag = np.abs(xa) @ np.abs(wd).T
    if w_type in (Q4_1, Q5_1):
        rows, k = wd.shape
        blocks = raw.reshape(rows, k // 32, 20 if w_type == Q4_1 else 24)
        m = np.abs(blocks[:, :, 2:4].copy().view(np.float16)[..., 0].astype(np.float64))  # [rows, nb]
        xs = np.abs(xa).reshape(xa.shape[0], k // 32, 32).sum(axis=2)  # [tokens, nb]
        mag = mag + xs @ m.T
    return mag


def assert_close_rowwise(got, want, magnitude, rtol, what):
    """|got - want| <= rtol * sum_k |w x| for every output (the scale of its rounding error)."""
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = rtol * magnitude + 1e-30
    bad = err > bound
    assert not bad.any(), (
        f"{what}: {bad.sum()} outputs off, worst err {err.max():.3g} "
        f"(bound there {bound.reshape(-1)[np.argmax(err)]:.3g})")


def all_cases():
    """(activations, weight type, shape, data): both activation paths for
    quantized weights; float weights take f32 activations (one case)."""
    for w_type in ALL_TYPES:
        shapes = SHAPES + (FLOAT_ONLY_SHAPES if w_type not in QUANT_TYPES else [])
        for act in (ACTIVATIONS if w_type in QUANT_TYPES else ["q8"]):
            for shape in shapes:
                for data in DATA:
                    name = f"{TYPE_NAMES[w_type]}-{shape[0]}x{shape[1]}x{shape[2]}-{data}"
                    yield pytest.param(act, w_type, shape, data,
                                       id=f"{act}-{name}" if w_type in QUANT_TYPES else name)


# ---------------------------------------------------------------- matmul --

@pytest.mark.parametrize("act,w_type,shape,data", list(all_cases()))
def test_matmul_matches_scalar_reference_within_float_rounding(kernel, act, w_type, shape, data):
    rows, k, nt = shape
    raw, wd, x = case(w_type, shape, data, seed=zlib.crc32(repr((w_type, shape, data)).encode()))
    got = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x, 0, rows, act)
    want = core.testing.kernel_matmul("scalar", w_type, raw, rows, k, x, 0, rows, act)
    assert got.shape == (nt, rows) and np.isfinite(got).all()
    mag = error_scale(w_type, raw, wd, activations_as_used(w_type, x, act))
    assert_close_rowwise(got, want, mag, 1e-5, f"{kernel} vs scalar")


@pytest.mark.parametrize("act,w_type,shape,data", list(all_cases()))
def test_scalar_matmul_matches_numpy_float64_reference(act, w_type, shape, data):
    rows, k, nt = shape
    raw, wd, x = case(w_type, shape, data, seed=1 + zlib.crc32(repr((w_type, shape, data)).encode()))
    got = core.testing.kernel_matmul("scalar", w_type, raw, rows, k, x, 0, rows, act)
    xa = activations_as_used(w_type, x, act)
    want = xa @ wd.T
    mag = error_scale(w_type, raw, wd, xa)
    assert_close_rowwise(got, want, mag, 1e-5, "scalar vs numpy(gguf.dequantize) float64")


def assert_bit_identical_for_any_row_split_and_token_count(kernel, act, w_type, raw, rows, k, x):
    """The determinism contract: an output depends on (row, token, data) only,
    not on r0/r1 (the thread split) nor n_tokens (decode vs prefill)."""
    nt = x.shape[0]
    full = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x, 0, rows, act)
    # rows split at awkward places, as threads would
    for cuts in ([0, 1, 6, 19, rows], [0, 18, rows], [0, 3, 4, 5, 33, 36, rows]):
        parts = np.full_like(full, np.nan)
        for r0, r1 in zip(cuts[:-1], cuts[1:]):
            y = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x, r0, r1, act)
            parts[:, r0:r1] = y[:, r0:r1]
        assert np.array_equal(parts.view(np.uint32), full.view(np.uint32)), f"split {cuts} differs"
    # token by token (decode), a few at a time (batched decode) and in odd
    # groups (prefill chunks)
    for groups in ([1] * nt, [3, 4, 1, nt - 8], [2, nt - 2], [8, 5, nt - 13], [6, 7, nt - 13]):
        t0 = 0
        for g in groups:
            y = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x[t0:t0 + g], 0, rows, act)
            assert np.array_equal(y.view(np.uint32), full[t0:t0 + g].view(np.uint32)), \
                f"tokens {t0}..{t0 + g} computed {g} at a time differ"
            t0 += g


# k = 544 / 576 / 608 / 640: a last group of 1 to 4 blocks (packed short tails in AVX-512's layout
# for q5 and the K-quants; its q4_0 / q4_1 / q8_0 go in row tiles), 736: of 7;
# 32 and 96: a row of one short group
@pytest.mark.parametrize("k", [32, 96, 544, 576, 608, 640, 736])
@pytest.mark.parametrize("w_type", ALL_TYPES, ids=[TYPE_NAMES[t] for t in ALL_TYPES])
def test_matmul_bit_identical_for_any_row_split_and_token_count(kernel, act, w_type, k):
    rows, nt = 37, 17
    raw, _, x = case(w_type, (rows, k, nt), "normal", seed=7)
    assert_bit_identical_for_any_row_split_and_token_count(kernel, act, w_type, raw, rows, k, x)


def test_matmul_leaves_rows_outside_r0_r1_untouched(kernel, act):
    rows, k, nt = 9, 64, 3
    raw, _, x = case(Q4_0, (rows, k, nt), "normal", seed=3)
    y = core.testing.kernel_matmul(kernel, Q4_0, raw, rows, k, x, 2, 7, act)
    assert np.isnan(y[:, :2]).all() and np.isnan(y[:, 7:]).all()
    assert np.isfinite(y[:, 2:7]).all()


def test_matmul_rejects_k_not_multiple_of_32_for_quantized_weights():
    x = np.zeros((1, 48), np.float32)
    with pytest.raises(Exception, match="multiple of 32"):
        core.testing.kernel_matmul("scalar", Q8_0, np.zeros(100, np.uint8), 1, 48, x, 0, 1)


# -------------------------------------------------------------- quantize --

QUANTIZE = {"q8": "kernel_quantize_q8a", "q16": "kernel_quantize_q16a"}


def quantize_activations(kernel, act, x):
    return getattr(core.testing, QUANTIZE[act])(kernel, x)


def activation_inputs(act):
    rng = np.random.default_rng(11)
    normal = rng.standard_normal(32 * 65).astype(np.float32)
    outliers = normal.copy()
    outliers[::97] *= 1e4
    zeros = normal.copy()
    zeros[32:64] = 0.0
    zeros[320:352] = -0.0
    # amax = the largest code gives d = 1 and id = 1: x = n + 0.5 must round away from zero
    top = np.float32(ACT_MAX[act])
    halves = np.concatenate([np.array([top, -top], np.float32),
                             (np.arange(30, dtype=np.float32) - 15) + np.float32(0.5)])
    halves = np.concatenate([halves, -halves, halves * np.float32(1e-3), halves * np.float32(3.0)])
    # tiny inputs: d near the bottom of the normal range; below amax 1e-33 the
    # blocks become zeros (a subnormal d would make 1/d overflow)
    tiny = (normal * np.float32(1e-31)).astype(np.float32)
    tinier = (normal * np.float32(1e-36)).astype(np.float32)
    return {"normal": normal, "outliers": outliers, "zero_blocks": zeros, "exact_halves": halves,
            "tiny": tiny, "tinier": tinier}


DATA_NAMES = list(activation_inputs("q8"))


@pytest.mark.parametrize("data", DATA_NAMES)
def test_scalar_quantize_activations_matches_numpy_reference(act, data):
    x = activation_inputs(act)[data]
    d, s, qs = quantize_activations("scalar", act, x)
    rd, rs, rqs = numpy_quantize_activations(x, act)
    assert qs.dtype == rqs.dtype
    assert np.array_equal(d.view(np.uint32), rd.view(np.uint32))
    assert np.array_equal(qs, rqs)
    assert np.array_equal(s, rs)
    assert np.array_equal(s, qs.astype(np.int32).sum(axis=1))


@pytest.mark.parametrize("data", DATA_NAMES)
def test_quantized_activations_hold_each_value_within_half_a_step(act, data):
    """|qs * d - x| <= d / 2 (d = amax / 127 or / 32767), up to the float
    rounding of x * (1 / d); blocks with amax below 1e-33 are zeros; the
    largest code is used and -128 never is (the kernels rely on it)."""
    x = activation_inputs(act)[data].astype(np.float32)
    d, _, qs = quantize_activations("scalar", act, x)
    xb = x.astype(np.float64).reshape(-1, 32)
    err = np.abs(qs.astype(np.float64) * d.astype(np.float64)[:, None] - xb)
    bound = np.where(d[:, None] > 0, d.astype(np.float64)[:, None] * (0.5 + 1e-3), 1e-33)
    assert (err <= bound).all(), err.max()
    assert ((d == 0) == (np.abs(xb).max(axis=1) < 1e-33)).all()
    assert (np.abs(qs.astype(np.int32)).max(axis=1) == np.where(d > 0, ACT_MAX[act], 0)).all()


@pytest.mark.parametrize("data", DATA_NAMES)
def test_quantize_activations_bit_identical_to_scalar(kernel, act, data):
    x = activation_inputs(act)[data]
    d, s, qs = quantize_activations(kernel, act, x)
    rd, rs, rqs = quantize_activations("scalar", act, x)
    assert np.array_equal(d.view(np.uint32), rd.view(np.uint32))
    assert np.array_equal(qs, rqs)
    assert np.array_equal(s, rs)


# Blocks per group of the SIMD sets' packed 8-bit activations (group_tiling.h).
PACK_GROUP = {"avx2": 8, "avx512": 16, "amx": 16}
SHORT_TAIL = {"avx2": 0, "avx512": 4, "amx": 4}  # last groups of at most this many blocks repeat their lanes


def expected_packed_row(d, s, qs, G, short_tail=0):
    """group_tiling.h's XGroup<G> layout, written from its description: per
    group of G blocks, q[c][l] = activations 4c..4c+3 of block l (c < 8), then
    per block d, -8 sum, -128 sum, d * sum, and the int16 half sums (lo | hi
    << 16); blocks past the row's end and the struct's padding are zero,
    except in a last group of n <= short_tail blocks, where lane l >= n
    repeats block l mod n (avx512_q8.cpp's packed tails)."""
    nb = len(d)
    size = -(-13 * 4 * G // 64) * 64  # alignas(64)
    out = bytearray()
    for g0 in range(0, nb, G):
        n = min(G, nb - g0)
        q = np.zeros((8, G), np.int32)
        q[:, :n] = qs[g0:g0 + n].reshape(n, 8, 4).copy().view(np.int32).reshape(n, 8).T
        lanes = lambda v, dt: np.concatenate([np.asarray(v, dt), np.zeros(G - n, dt)])  # noqa: E731
        dd, ss = d[g0:g0 + n], s[g0:g0 + n].astype(np.int32)
        lo = qs[g0:g0 + n, :16].astype(np.int32).sum(axis=1)
        hi = qs[g0:g0 + n, 16:].astype(np.int32).sum(axis=1)
        hs = ((lo & 0xFFFF) | ((hi & 0xFFFF) << 16)).astype(np.uint32).view(np.int32)
        group = (q.tobytes() + lanes(dd, np.float32).tobytes() + lanes(-8 * ss, np.int32).tobytes()
                 + lanes(-128 * ss, np.int32).tobytes() + lanes(dd * ss.astype(np.float32), np.float32).tobytes()
                 + lanes(hs, np.int32).tobytes())
        if n <= short_tail:  # lane l repeats block l mod n: the group's 13 arrays of G lanes, lane by lane
            arrays = np.frombuffer(group, np.int32).reshape(13, G).copy()
            group = arrays[:, np.arange(G) % n].tobytes()
        out += group + bytes(size - len(group))
    return bytes(out)


@pytest.mark.parametrize("nb", [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 18, 19, 33, 48])
def test_packed_activations_follow_the_group_layout(kernel, nb):
    if kernel == "scalar":
        pytest.skip("the scalar set keeps the q8a blocks as they are")
    x = activation_inputs("q8")["zero_blocks"]
    x = np.resize(x, 32 * nb).astype(np.float32) * np.float32(1 + nb / 7)
    d, s, qs = core.testing.kernel_quantize_q8a(kernel, x)
    packed = bytes(core.testing.kernel_pack_q8a(kernel, x))
    want = expected_packed_row(d, s, qs, PACK_GROUP[kernel], SHORT_TAIL[kernel])
    # the groups, then row_tiles.h's raw part: the blocks' bytes in order, their d, sum and d * sum
    want += (qs.astype(np.int8).tobytes() + d.astype(np.float32).tobytes() + s.astype(np.int32).tobytes()
             + (d * s.astype(np.float32)).astype(np.float32).tobytes())
    assert packed == want


# (rows, k, n_tokens) for the row-tile paths (row_tiles.h): avx2's octets
# of rows against 1 to 4 tokens at a time; avx512's vpdpbusd in registers up
# to 8 tokens, then 1 to 3 row tiles unpacked against 4 to 12 tokens at a
# time; amx's tile unit from 12; partial row tiles (the weights go in tiles
# of 16 rows, 2 octets) and token tiles, one block, a few, many
ROW_TILE_SHAPES = [(37, 576, 32), (16, 544, 33), (129, 2080, 47), (7, 96, 40), (33, 32, 64), (20, 736, 35),
                   (48, 1024, 100), (17, 128, 49), (64, 1536, 36), (5, 160, 21), (100, 576, 29),
                   (29, 96, 23), (45, 576, 21)]  # last tiles of 13 and 13 rows: avx2's second octet of 5


def row_tile_case(w_type, shape):
    """Weights (one row in ten of larger scale), their GGUF bytes and
    activations for a row-tile shape. q8_0's first block of row 0 holds
    quants of -128, which a file may hold (ggml never writes them):
    |-128| must stay 128 as an unsigned byte (avx2's sign trick)."""
    rows, k, nt = shape
    rng = np.random.default_rng(rows * 104729 + k * 17 + nt)
    w = rng.standard_normal((rows, k)).astype(np.float32)
    w[rng.random(rows) < 0.1] *= 50.0
    x = rng.standard_normal((nt, k)).astype(np.float32)
    raw = quantize(w, QUANT_TYPES[w_type]).reshape(-1).view(np.uint8)
    if w_type == Q8_0:
        blocks = raw.reshape(rows, k // 32, 34)
        blocks[0, 0, 2:] = np.where(np.arange(32) % 2 == 0, -128, 64).astype(np.int8).view(np.uint8)
    return raw, x


@pytest.mark.parametrize("kernel_set", ["avx2", "avx512", "amx"])
@pytest.mark.parametrize("w_type", [Q4_0, Q4_1, Q8_0, Q5_0], ids=lambda t: TYPE_NAMES[t])
@pytest.mark.parametrize("shape", ROW_TILE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_row_tiles_give_the_same_bits_whatever_the_batch(kernel_set, w_type, shape):
    """The outputs depend on (row, token, data) only: a token alone or
    among 2 to 100 (avx2: two octets of rows against 1-2 tokens, one against
    4 at a time; avx512: vpdpbusd in registers, unpacked row tiles; amx: the
    tile unit), rows split at any row, inside a tile of 16 (or an octet of
    8) or not, and for the few-token paths too."""
    if kernel_set not in AVAILABLE:
        pytest.skip(f"this CPU/build has no {kernel_set}")
    rows, k, nt = shape
    raw, x = row_tile_case(w_type, shape)
    full = core.testing.kernel_matmul(kernel_set, w_type, raw, rows, k, x, 0, rows)
    for cuts in ([0, rows], [0, min(3, rows), rows], [0, rows // 2, rows], [0, 1, min(17, rows), rows]):
        for n in (nt, 1, 2):  # many tokens, and the decode paths
            parts = np.full_like(full[:n], np.nan)
            for r0, r1 in zip(cuts[:-1], cuts[1:]):
                parts[:, r0:r1] = core.testing.kernel_matmul(kernel_set, w_type, raw, rows, k, x[:n], r0, r1)[:, r0:r1]
            assert np.array_equal(parts.view(np.uint32), full[:n].view(np.uint32)), f"split {cuts}, {n} tokens differs"
    for groups in ([1] * nt, [3, 8, 1, nt - 12], [9, nt - 9], [nt - 5, 5], [16, nt - 16]):
        t0 = 0
        for g in groups:
            y = core.testing.kernel_matmul(kernel_set, w_type, raw, rows, k, x[t0:t0 + g], 0, rows)
            assert np.array_equal(y.view(np.uint32), full[t0:t0 + g].view(np.uint32)), \
                f"tokens {t0}..{t0 + g} computed {g} at a time differ"
            t0 += g


@pytest.mark.parametrize("w_type", [Q4_0, Q4_1, Q8_0], ids=lambda t: TYPE_NAMES[t])
@pytest.mark.parametrize("shape", ROW_TILE_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_row_tiles_give_the_same_bits_in_every_set(w_type, shape):
    """row_tiles.h: the same exact integers and the same float operations
    per output, whether vpmaddubsw (avx2), vpdpbusd (avx512) or the tile
    unit (amx) made them; and the scalar reference's results within float
    rounding (with q8_0 weights of -128 too)."""
    rows, k, nt = shape
    raw, x = row_tile_case(w_type, shape)
    want = core.testing.kernel_matmul("scalar", w_type, raw, rows, k, x, 0, rows)
    wd = dequantize(raw.reshape(rows, -1), QUANT_TYPES[w_type]).astype(np.float64)
    mag = error_scale(w_type, raw, wd, activations_as_used(w_type, x, "q8"))
    first = None
    for s in (s for s in ("avx2", "avx512", "amx") if s in AVAILABLE):
        got = core.testing.kernel_matmul(s, w_type, raw, rows, k, x, 0, rows)
        assert_close_rowwise(got, want, mag, 1e-5, f"{s} vs scalar")
        if first is None:
            first = (s, got)
        assert np.array_equal(got.view(np.uint32), first[1].view(np.uint32)), f"{s} differs from {first[0]}"


# ----------------------------------------------------- attention helpers --

LENGTHS = [1, 7, 8, 15, 16, 17, 33, 64, 100, 128, 131]


@pytest.mark.parametrize("n", LENGTHS)
def test_axpy_f32_and_axpy_f16_match_numpy(kernel, n):
    rng = np.random.default_rng(100 + n)
    x = rng.standard_normal(n).astype(np.float32)
    y = rng.standard_normal(n).astype(np.float32)
    h = x.astype(np.float16)
    alpha = np.float32(-0.37)
    want32 = y.astype(np.float64) + np.float64(alpha) * x.astype(np.float64)
    want16 = y.astype(np.float64) + np.float64(alpha) * h.astype(np.float64)
    tol = 1e-6 * (np.abs(y) + np.abs(alpha * x))
    assert (np.abs(core.testing.kernel_axpy_f32(kernel, alpha, x, y) - want32) <= tol).all()
    assert (np.abs(core.testing.kernel_axpy_f16(kernel, alpha, h.view(np.uint16), y) - want16) <= tol).all()


@pytest.mark.parametrize("hd", [64, 128, 80, 6])
def test_scores_of_a_dimension_major_block_match_numpy(kernel, hd):
    # a block of 16 keys stored [hd, 16]: dimension d of key j at d * 16 + j
    rng = np.random.default_rng(hd)
    q = rng.standard_normal(hd).astype(np.float32)
    keys = rng.standard_normal((16, hd)).astype(np.float32)
    for cache in (keys, keys.astype(np.float16)):
        kv = cache.astype(np.float64)
        want = kv @ q.astype(np.float64)
        scale = np.abs(kv) @ np.abs(q.astype(np.float64))  # sum |k q|: the rounding error's scale
        kt = np.ascontiguousarray(cache.T)
        got = core.testing.kernel_scores(kernel, q, kt if cache.dtype == np.float32 else kt.view(np.uint16))
        assert got.shape == (16,)
        assert (np.abs(got - want) <= 1e-6 * scale).all()


@pytest.mark.parametrize("nq", [1, 2, 3, 4])
@pytest.mark.parametrize("hd", [64, 128, 80, 6])
def test_a_group_of_queries_scores_as_each_alone(kernel, hd, nq):
    """scores_group (the attention's shared-load form for the heads of one
    KV head) gives each query exactly the bits scores gives it alone, so
    grouping never changes a result."""
    rng = np.random.default_rng(100 + hd + nq)
    q = rng.standard_normal((nq, hd)).astype(np.float32)
    keys = rng.standard_normal((16, hd)).astype(np.float32)
    for cache in (keys, keys.astype(np.float16)):
        kt = np.ascontiguousarray(cache.T)
        kt = kt if cache.dtype == np.float32 else kt.view(np.uint16)
        together = core.testing.kernel_scores_group(kernel, q.reshape(-1), kt, nq)
        alone = np.stack([core.testing.kernel_scores(kernel, q[m], kt) for m in range(nq)])
        assert np.array_equal(together.view(np.uint32), alone.view(np.uint32))


@pytest.mark.parametrize("nq", [1, 2, 3, 4])
@pytest.mark.parametrize("hd", [64, 128, 80, 6])
@pytest.mark.parametrize("n", [1, 2, 7, 16])
def test_a_group_of_weight_rows_accumulates_as_each_alone(kernel, hd, nq, n):
    """accumulate_group gives each row exactly the bits accumulate gives it
    alone, whatever the group's size."""
    rng = np.random.default_rng(hd * 1000 + nq * 100 + n)
    w = rng.random((nq, n)).astype(np.float32)
    out0 = rng.standard_normal((nq, hd)).astype(np.float32)
    values = rng.standard_normal((n, hd)).astype(np.float32)
    for v in (values, values.astype(np.float16).view(np.uint16)):
        together = core.testing.kernel_accumulate_group(kernel, w.reshape(-1), v, out0.reshape(-1), nq)
        alone = np.stack([core.testing.kernel_accumulate(kernel, w[m], v, out0[m]) for m in range(nq)])
        assert np.array_equal(together.view(np.uint32), alone.view(np.uint32))


def test_group_kernels_refuse_a_group_too_large():
    with pytest.raises(ValueError, match="nq must be 1 .. 4"):
        core.testing.kernel_scores_group("scalar", np.zeros(5 * 64, np.float32), np.zeros((64, 16), np.float32), 5)


@pytest.mark.parametrize("hd", [64, 128, 80, 6])
def test_f16_attention_kernels_equal_f32_ones_on_the_converted_block(kernel, hd):
    # attention converts a block once for many queries, or converts in the
    # loads for a few: the same bits either way
    rng = np.random.default_rng(1000 + hd)
    q = rng.standard_normal(hd).astype(np.float32)
    kt = rng.standard_normal((hd, 16)).astype(np.float16).view(np.uint16)
    kt32 = core.testing.kernel_f16_to_f32_row(kernel, kt.reshape(-1)).reshape(hd, 16)
    assert np.array_equal(core.testing.kernel_scores(kernel, q, kt), core.testing.kernel_scores(kernel, q, kt32))
    for n in (1, 7, 16):
        v = rng.standard_normal((n, hd)).astype(np.float16).view(np.uint16)
        v32 = core.testing.kernel_f16_to_f32_row(kernel, v.reshape(-1)).reshape(n, hd)
        w = rng.random(n).astype(np.float32)
        out0 = rng.standard_normal(hd).astype(np.float32)
        assert np.array_equal(core.testing.kernel_accumulate(kernel, w, v, out0),
                              core.testing.kernel_accumulate(kernel, w, v32, out0))


@pytest.mark.parametrize("n", [1, 7, 15, 17, 100, 65535, 65536])
def test_f16_to_f32_row_is_exact(kernel, n):
    # every f16 value (65536; 65535 leaves a tail), or a short row of ordinary
    # values around 1.0 (the tail paths)
    every = np.arange(65536, dtype=np.uint16)
    bits = every[:n] if n >= 65535 else every[0x3C00 - n // 2:0x3C00 - n // 2 + n]
    got = core.testing.kernel_f16_to_f32_row(kernel, bits)
    want = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


@pytest.mark.parametrize("hd", [64, 128, 80])
@pytest.mark.parametrize("n", [1, 7, 16])
def test_accumulate_agrees_with_its_one_position_loop(kernel, hd, n):
    # avx512's accumulate sums even and odd positions apart: equal within
    # float rounding (the scalar set, one loop, bit for bit)
    rng = np.random.default_rng(hd * 100 + n)
    v = rng.standard_normal((n, hd)).astype(np.float32)
    w = rng.random(n).astype(np.float32)
    out0 = rng.standard_normal(hd).astype(np.float32)
    for cache in (v, v.astype(np.float16).view(np.uint16)):
        axpy = core.testing.kernel_axpy_f32 if cache.dtype == np.float32 else core.testing.kernel_axpy_f16
        kv = cache.astype(np.float64) if cache.dtype == np.float32 else cache.view(np.float16).astype(np.float64)
        want = out0
        for j in range(n):
            want = axpy(kernel, w[j], cache[j], want)
        got = core.testing.kernel_accumulate(kernel, w, cache, out0)
        mag = np.abs(out0.astype(np.float64)) + np.abs(w.astype(np.float64)) @ np.abs(kv)
        assert (np.abs(got - want) <= 1e-6 * mag).all()
        if kernel == "scalar":
            assert np.array_equal(got, want)


@pytest.mark.parametrize("n", [1, 7, 8, 15, 16, 17, 1536])
def test_silu_mul_matches_numpy(kernel, n):
    rng = np.random.default_rng(n)
    gate = (rng.standard_normal(n) * 8).astype(np.float32)
    specials = np.array([-100.0, 100.0, 0.0, -0.0, 1e-30, -90.0, 88.0], np.float32)  # e^-|g| underflowing, ±0
    gate[: min(n, len(specials))] = specials[: min(n, len(specials))]
    up = rng.standard_normal(n).astype(np.float32)
    got = core.testing.kernel_silu_mul(kernel, gate, up)
    g = gate.astype(np.float64)
    want = g / (1.0 + np.exp(-g)) * up.astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-35)


@pytest.mark.parametrize("n", [1, 7, 8, 16, 17, 300, 2049])
def test_scaled_softmax_matches_numpy(kernel, n):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 30).astype(np.float32)
    x[::5] -= 200.0  # scores far below the max: e^-200 underflows to 0
    got = core.testing.kernel_scaled_softmax(kernel, x, 0.125)
    z = x.astype(np.float64) * np.float32(0.125)
    want = np.exp(z - z.max())
    want /= want.sum()
    assert got.dtype == np.float32 and got.shape == x.shape
    # float32 exp (about 1 ulp) and a float32 sum of n terms
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-30)
    assert got.sum() == pytest.approx(1.0, abs=1e-5)


def exp_shifted_inputs():
    rng = np.random.default_rng(11)
    special = np.array([0.0, -0.0, -1e-30, -86.99, -87.0, -87.01, -100.0, -np.inf, 0.34657359, -0.34657359,
                        0.6931472, -0.6931472, -1.0, -20.5, -43.5], dtype=np.float32)
    # the sampler's range, l - max <= 0, dense near 0 where the mass is
    wide = np.concatenate([-rng.exponential(3.0, 3001), -rng.uniform(0, 90, 3001)]).astype(np.float32)
    return np.concatenate([special, wide])


def test_exp_shifted_is_bit_identical_on_every_set_and_within_2_ulp_of_exp():
    x = exp_shifted_inputs()
    shift = np.float32(1.5)
    got = {k: core.testing.kernel_exp_shifted(k, x + shift, shift) for k in core.supported_kernels()}
    ref = got["scalar"]
    for k, y in got.items():  # a seeded draw must not depend on the CPU
        np.testing.assert_array_equal(y, ref, err_msg=k)
    t = (x + shift).astype(np.float32) - shift  # the kernels' own float32 subtraction
    want = np.exp(t.astype(np.float64))
    live = t >= -87.0
    assert np.all(ref[~live] == 0.0)
    ulp = np.spacing(want[live].astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(ref[live] - want[live]) / ulp) <= 2.0
    # every length: the SIMD bodies and their tails agree
    for n in (1, 7, 8, 9, 15, 16, 17, 33):
        for k in got:
            np.testing.assert_array_equal(core.testing.kernel_exp_shifted(k, x[:n] + shift, shift), ref[:n], err_msg=k)


def test_exp_shifted_f64_is_bit_identical_on_every_set_and_within_2_ulp_of_exp():
    x = np.concatenate([exp_shifted_inputs(), -np.linspace(0, 720, 2001, dtype=np.float32)])
    shift = np.float32(2.25)
    xs = x + shift
    got = {k: core.testing.kernel_exp_shifted_f64(k, xs, shift) for k in core.supported_kernels()}
    ref = got["scalar"]
    assert ref.dtype == np.float64
    for k, y in got.items():
        np.testing.assert_array_equal(y, ref, err_msg=k)
    t = xs.astype(np.float64) - np.float64(shift)
    live = t >= -708.0
    assert np.all(ref[~live] == 0.0)
    want = np.exp(t[live].astype(np.longdouble))  # 80-bit on x86: a reference finer than a double
    ulp = np.spacing(want.astype(np.float64))
    assert float(np.max(np.abs(ref[live].astype(np.longdouble) - want) / ulp)) <= 2.0
    for n in (1, 3, 4, 5, 7, 8, 9, 17):
        for k in got:
            np.testing.assert_array_equal(core.testing.kernel_exp_shifted_f64(k, xs[:n], shift), ref[:n], err_msg=k)


def f16_conversion_inputs():
    rng = np.random.default_rng(5)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 65504.0, -65504.0, 65519.99, 65520.0, 1e6, -1e6,
                        6.1035156e-05, 6.097555e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08,
                        8.940697e-08, 1e-10, -1e-10, 1.0, -1.0, 0.5, 1.00048828125, 1.000244140625,
                        1.0007324, 2049.0, 2051.0, 3.0e-5, -3.0e-5, 1e-45], dtype=np.float32)
    wide = (rng.standard_normal(4099) * np.exp2(rng.integers(-30, 20, 4099))).astype(np.float32)
    # every f16 value, and every midpoint between neighbours (ties to even)
    all_h = np.arange(0, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float32)
    mids = ((all_h[:-1].astype(np.float64) + all_h[1:].astype(np.float64)) / 2).astype(np.float32)
    return np.concatenate([special, wide, all_h, -mids, mids])


@pytest.mark.parametrize("n", [1, 7, 8, 9, 31, None])
def test_f32_to_f16_row_bit_identical_to_numpy_astype(kernel, n):
    x = f16_conversion_inputs()
    if n is not None:
        x = x[:n]
    got = core.testing.kernel_f32_to_f16_row(kernel, x)
    with np.errstate(over="ignore"):
        want = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(got, want), f"first mismatch at {np.argmax(got != want)}"


def test_f32_to_f16_row_keeps_nan_a_nan_with_its_sign(kernel):
    x = np.array([np.nan, -np.nan, 1.0, np.nan], dtype=np.float32)
    got = core.testing.kernel_f32_to_f16_row(kernel, x)
    h = got.view(np.float16)
    assert np.isnan(h[[0, 1, 3]]).all() and h[2] == 1.0
    assert np.array_equal(np.signbit(h), np.signbit(x))
    # the quiet nan numpy makes from the default nan
    assert got[0] == np.float32(np.nan).astype(np.float16).view(np.uint16)


@pytest.mark.parametrize("w_type", ALL_TYPES, ids=[TYPE_NAMES[t] for t in ALL_TYPES])
def test_long_prefill_bit_identical_to_decode_across_token_chunks(kernel, act, w_type):
    """Prefill processes tokens in cache-sized chunks (about a hundred tokens
    at k = 2080); outputs on both sides of a chunk boundary must still equal
    the one-token (decode) results bit for bit, and the scalar path within
    float rounding."""
    rows, k, nt = 9, 2080, 300
    raw, wd, x = case(w_type, (rows, k, nt), "normal", seed=13)
    full = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x, 0, rows, act)
    for t in range(nt):
        y = core.testing.kernel_matmul(kernel, w_type, raw, rows, k, x[t:t + 1], 0, rows, act)
        assert np.array_equal(y.view(np.uint32), full[t:t + 1].view(np.uint32)), f"token {t} differs"
    want = core.testing.kernel_matmul("scalar", w_type, raw, rows, k, x, 0, rows, act)
    assert_close_rowwise(full, want, error_scale(w_type, raw, wd, activations_as_used(w_type, x, act)), 1e-5,
                         f"{kernel} vs scalar")


@pytest.mark.skipif(not os.environ.get("HEARTH_QEMU_TESTS"),
                    reason="slow (about a minute): set HEARTH_QEMU_TESTS=1 to run the kernels on an emulated Haswell")
@pytest.mark.skipif(os.environ.get("HEARTH_UNDER_QEMU") == "1", reason="already running under qemu")
def test_kernels_pass_on_an_emulated_haswell_without_avx512():
    """DESIGN.md's check that no AVX-512 (or AVX2 outside avx2.cpp) leaks into
    code a Haswell runs: the module loads under qemu-user -cpu Haswell, offers
    scalar and avx2 only, and those paths pass the core kernel tests there."""
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        pytest.skip("qemu-x86_64 (Debian's qemu-user) is not installed")
    env = dict(os.environ, HEARTH_UNDER_QEMU="1")
    probe = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-c",
                            "from hearthlm import _core; print(','.join(_core.supported_kernels()))"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == "scalar,avx2"
    run = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-m", "pytest", __file__, "-q", "-x",
                          "-p", "no:cacheprovider", "-k",
                          "bit_identical or matches_scalar_reference and 37x544 or f32_to_f16 or f16_to_f32 or axpy "
                          "or scores or accumulate or silu or row_tiles and 45x576"],
                         env=env, capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
