"""Our q8_0 / q4_0 / bf16 encoders are byte-exact with the gguf package's reference quantizers."""

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf import GGMLQuantizationType as QT  # noqa: E402

from hearthlm.convert import quants  # noqa: E402

# the reference (gguf.quants) warns on blocks whose d underflows; so would ggml's C, silently
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

OURS = {QT.Q8_0: quants.quantize_q8_0, QT.Q4_0: quants.quantize_q4_0}
TYPES = [QT.Q8_0, QT.Q4_0]


def _same_bytes(x, qtype):
    x = np.asarray(x, dtype=np.float32)
    ours = OURS[qtype](x)
    ref = gguf.quants.quantize(x, qtype)
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    bad = np.nonzero((ours != ref).any(axis=-1).ravel())[0]
    assert bad.size == 0, f"{bad.size} rows differ, first {bad[:5]}"


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize("seed", range(4))
def test_random_normal_blocks_match_gguf_reference(qtype, seed):
    rng = np.random.default_rng(seed)
    scale = [1e-3, 0.02, 1.0, 300.0][seed]
    _same_bytes(rng.standard_normal((64, 256)) * scale, qtype)


@pytest.mark.parametrize("qtype", TYPES)
def test_blocks_with_outliers_match_gguf_reference(qtype):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((32, 128)).astype(np.float32)
    idx = rng.integers(0, x.size, 60)
    x.flat[idx] = rng.choice([-1, 1], 60) * rng.uniform(50, 5e4, 60)
    _same_bytes(x, qtype)


@pytest.mark.parametrize("qtype", TYPES)
def test_all_zero_blocks_give_zero_scale_and_match(qtype):
    x = np.zeros((3, 96), dtype=np.float32)
    x[1, 40] = 0.5  # one non-zero block between zero blocks
    _same_bytes(x, qtype)
    out = OURS[qtype](x)
    assert out[0, :2].view(np.float16)[0] == 0  # d of an all-zero block is 0


@pytest.mark.parametrize("qtype", TYPES)
def test_tiny_and_subnormal_values_match_gguf_reference(qtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 64)) * 1e-8  # d underflows in fp16
    x[0] *= 1e-30  # float32 subnormals
    _same_bytes(x, qtype)


@pytest.mark.parametrize("qtype", TYPES)
@pytest.mark.parametrize("shape", [(32,), (1, 32), (5, 96), (7, 3, 160), (33, 32 * 9)])
def test_shapes_not_multiple_of_256_match_gguf_reference(qtype, shape):
    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    _same_bytes(x, qtype)


@pytest.mark.parametrize("qtype", TYPES)
def test_mixed_sign_extreme_blocks_match_gguf_reference(qtype):
    rng = np.random.default_rng(5)
    blocks = []
    for _ in range(200):
        b = rng.standard_normal(32).astype(np.float32)
        m = rng.uniform(1, 1000)
        i, j = rng.choice(32, 2, replace=False)
        b[i], b[j] = m, -m  # equal magnitudes of both signs: the first one sets q4_0's sign
        blocks.append(b)
    blocks.append(np.where(np.arange(32) % 2 == 0, 7.0, -7.0).astype(np.float32))
    blocks.append(np.full(32, -3.25, np.float32))
    blocks.append(np.float32([65504.0, -65504.0] * 16))
    _same_bytes(np.stack(blocks), qtype)


def test_q8_0_rounds_half_away_from_zero_like_roundf():
    # amax 127 makes d = 1 and id = 1, so x*id is x: exact halves and the float just below 0.5
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, :7] = [127, 0.5, -0.5, 2.5, -2.5, np.nextafter(np.float32(0.5), np.float32(0)), 1.5]
    _same_bytes(x, QT.Q8_0)
    q = quants.quantize_q8_0(x)[0, 2:9].view(np.int8)
    assert q.tolist() == [127, 1, -1, 3, -3, 0, 2]


def test_q4_0_nibble_layout_low_j_high_j_plus_16():
    x = np.zeros((1, 32), dtype=np.float32)
    x[0, 0] = -8.0  # d = 1
    x[0, 16] = 7.0
    out = quants.quantize_q4_0(x)[0]
    assert out[:2].view(np.float16)[0] == 1.0
    assert out[2] == (0 | (15 << 4))  # element 0 -> q 0 (low), element 16 -> q 15 (high)
    _same_bytes(x, QT.Q4_0)


def test_bf16_matches_gguf_reference_including_nan_and_rounding():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 64)).astype(np.float32) * 1e3
    x[0, :4] = [np.nan, np.inf, -np.inf, 0.0]
    x[1, :2] = np.uint32([0x3F808000, 0x3F818000]).view(np.float32)  # ties to even, both ways
    ref = gguf.quants.quantize(x, QT.BF16)
    assert (quants.to_bf16(x).view(np.uint8).reshape(ref.shape) == ref).all()


def test_row_lengths_not_multiple_of_32_are_refused():
    with pytest.raises(ValueError):
        quants.quantize_q8_0(np.ones((2, 40), np.float32))
    assert not quants.can_quantize(40, QT.Q4_0) and quants.can_quantize(40, QT.F16)
