"""hearth's quantizers for the converter's K-quant files (csrc/gguf/quantize.cpp):
byte-identical to llama.cpp's reference quantizers (ggml's
quantize_row_*_ref, called in the libggml that llama-cpp-python ships; those
tests skip without it) and to the `gguf` package's q5_0 / q5_1; and, always,
a round trip through the gguf package's dequantization within each type's
expected error."""
import ctypes
import os

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as QT  # noqa: E402

core = pytest.importorskip("hearthlm._core")

TYPES = {QT.Q2_K: 84, QT.Q3_K: 110, QT.Q4_K: 144, QT.Q5_K: 176, QT.Q6_K: 210, QT.Q5_0: 22, QT.Q5_1: 24}
K_TYPES = [QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K]
REF_NAMES = {QT.Q2_K: "quantize_row_q2_K_ref", QT.Q3_K: "quantize_row_q3_K_ref", QT.Q4_K: "quantize_row_q4_K_ref",
             QT.Q5_K: "quantize_row_q5_K_ref", QT.Q6_K: "quantize_row_q6_K_ref", QT.Q5_0: "quantize_row_q5_0_ref",
             QT.Q5_1: "quantize_row_q5_1_ref"}
# rms error / rms weight on normal data (measured: q2_K 0.30 ... q6_K 0.018)
MAX_REL_RMS = {QT.Q2_K: 0.35, QT.Q3_K: 0.18, QT.Q4_K: 0.085, QT.Q5_K: 0.045, QT.Q6_K: 0.022, QT.Q5_0: 0.05,
               QT.Q5_1: 0.045}


def data(kind, rng, rows=32, n=1024):
    x = rng.standard_normal((rows, n)).astype(np.float32) * 0.02
    if kind == "outliers":
        x.flat[rng.integers(0, x.size, 100)] *= 50
    elif kind == "tiny":
        x *= 1e-6
    elif kind == "zeros":
        x[:, :256] = 0
        x[3] = 0
    elif kind == "positive":
        x = np.abs(x) + 0.01  # no negative value: the minimum is 0
    return x


def ggml_reference():
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama.cpp's quantizers come with llama-cpp-python")
    lib = os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so")
    if not os.path.exists(lib):
        pytest.skip(f"{lib} not found")
    return ctypes.CDLL(lib)


KINDS = ["normal", "outliers", "tiny", "zeros", "positive"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qtype", list(TYPES), ids=[t.name for t in TYPES])
def test_bytes_equal_llama_cpp_reference_quantizer(qtype, kind):
    lib = ggml_reference()
    fn = getattr(lib, REF_NAMES[qtype])
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    x = data(kind, np.random.default_rng(hash_seed(qtype, kind)))
    ref = np.zeros((x.shape[0], x.shape[1] // (256 if qtype in K_TYPES else 32) * TYPES[qtype]), np.uint8)
    for r in range(x.shape[0]):
        fn(x[r].ctypes.data, ref[r].ctypes.data, x.shape[1])
    ours = core.quantize_rows(int(qtype), x, 2)
    assert ours.shape == ref.shape
    bad = np.nonzero((ours != ref).any(axis=1))[0]
    assert bad.size == 0, f"rows {bad[:5]} differ"


def hash_seed(qtype, kind):
    return int(qtype) * 100 + KINDS.index(kind)


@pytest.mark.parametrize("qtype", [QT.Q5_0, QT.Q5_1], ids=["Q5_0", "Q5_1"])
@pytest.mark.parametrize("kind", KINDS)
def test_q5_bytes_equal_gguf_package(qtype, kind):
    x = data(kind, np.random.default_rng(hash_seed(qtype, kind)))
    assert np.array_equal(core.quantize_rows(int(qtype), x, 1), gguf.quants.quantize(x, qtype))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("qtype", list(TYPES), ids=[t.name for t in TYPES])
def test_round_trip_error_is_the_types(qtype, kind):
    x = data(kind, np.random.default_rng(hash_seed(qtype, kind)))
    q = core.quantize_rows(int(qtype), x, 2)
    back = gguf.quants.dequantize(q, qtype)
    assert np.isfinite(back).all()
    ours = core.testing.dequantize_row(int(qtype), q.reshape(-1), x.size)
    assert np.array_equal(ours.view(np.uint32), back.reshape(-1).view(np.uint32))  # our reader agrees
    rms = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    if rms > 0 and kind in ("normal", "outliers", "positive"):
        rel = np.sqrt(np.mean((back - x).astype(np.float64) ** 2)) / rms
        assert rel <= MAX_REL_RMS[qtype] * (3 if kind == "outliers" else 1), rel
    if kind == "zeros":
        assert (back[3] == 0).all()


def test_quantize_rows_refuses_what_it_cannot_write():
    with pytest.raises(Exception, match="q4_0"):
        core.quantize_rows(int(QT.Q4_0), np.zeros((1, 32), np.float32))
    with pytest.raises(Exception, match="not whole q4_K blocks"):
        core.quantize_rows(int(QT.Q4_K), np.zeros((1, 96), np.float32))
