"""Tensor encoders for the GGUF types the converter writes.

The K-quants (q2_K ... q6_K) and q5_0 / q5_1 go to the C++ core
(``hearthlm._core.quantize_rows``, csrc/gguf/quantize.cpp): llama.cpp's
reference quantizers, byte-identical, rows in parallel.

q8_0 and q4_0 are byte-exact with ggml's reference quantizers
(``quantize_row_q8_0_ref`` / ``quantize_row_q4_0_ref``), which is also what
``gguf.quants.quantize`` produces: the scale ``d`` is computed in float32,
``id = 1/d`` (0 when d is 0), the values are ``x*id`` rounded half away from
zero (q8_0) or ``trunc(x*id + 8.5)`` clamped to 15 (q4_0), and only then is
``d`` stored as fp16.  Everything is vectorised over whole blocks; callers
pass a chunk of rows at a time to bound memory.
"""

from __future__ import annotations

import os

import numpy as np
from gguf import GGMLQuantizationType as QT

QK = 32  # weights per q8_0 / q4_0 block

#: elements and bytes per block of the block types
BLOCK = {QT.Q8_0: (QK, 2 + QK), QT.Q4_0: (QK, 2 + QK // 2), QT.Q5_0: (QK, 22), QT.Q5_1: (QK, 24),
         QT.Q2_K: (256, 84), QT.Q3_K: (256, 110), QT.Q4_K: (256, 144), QT.Q5_K: (256, 176), QT.Q6_K: (256, 210)}
#: the types the core quantizes
CORE_TYPES = (QT.Q5_0, QT.Q5_1, QT.Q2_K, QT.Q3_K, QT.Q4_K, QT.Q5_K, QT.Q6_K)


def _blocks(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.shape[-1] % QK != 0:
        raise ValueError(f"row length {x.shape[-1]} is not a multiple of {QK}")
    return x.reshape(-1, QK)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    # roundf(): .5 goes away from zero (np.round would go to even).  Not
    # floor(|v| + 0.5): in float32 that rounds 0.49999997 up to 1.
    a = np.abs(v)
    fl = np.floor(a)
    return np.copysign(fl + np.floor((a - fl) * np.float32(2)), v)


def quantize_q8_0(x: np.ndarray) -> np.ndarray:
    """Rows of float32 (last axis a multiple of 32) -> uint8 rows of q8_0 blocks."""
    shape = x.shape
    b = _blocks(x)
    d = np.abs(b).max(axis=1, keepdims=True) / np.float32(127)
    # a subnormal d overflows 1/d (and NaN-filled blocks give NaN): ggml's C does the
    # same arithmetic, so keep the bytes and drop numpy's warnings
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
        q = _round_half_away(b * inv).astype(np.int8)
    out = np.empty((b.shape[0], 2 + QK), dtype=np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8)
    out[:, 2:] = q.view(np.uint8)
    return out.reshape(*shape[:-1], shape[-1] // QK * (2 + QK))


def quantize_q4_0(x: np.ndarray) -> np.ndarray:
    """Rows of float32 (last axis a multiple of 32) -> uint8 rows of q4_0 blocks."""
    shape = x.shape
    b = _blocks(x)
    # the signed value of largest magnitude (first one on ties, as ggml's loop)
    imax = np.abs(b).argmax(axis=1)[:, None]
    vmax = np.take_along_axis(b, imax, axis=1)
    d = vmax / np.float32(-8)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d).astype(np.float32)
        q = np.trunc(b * inv + np.float32(8.5)).astype(np.float32)
        q = np.minimum(q, np.float32(15)).astype(np.uint8)
    out = np.empty((b.shape[0], 2 + QK // 2), dtype=np.uint8)
    out[:, :2] = d.astype(np.float16).view(np.uint8)
    # byte j holds element j (low nibble) and element j + 16 (high nibble)
    out[:, 2:] = q[:, : QK // 2] | (q[:, QK // 2 :] << np.uint8(4))
    return out.reshape(*shape[:-1], shape[-1] // QK * (2 + QK // 2))


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits (uint16), round to nearest even, NaN kept quiet (as ggml)."""
    n = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    is_nan = (n & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    rounded = (n.astype(np.uint64) + (np.uint64(0x7FFF) + ((n >> np.uint32(16)) & np.uint32(1)))) >> np.uint64(16)
    nan_bits = (n >> np.uint32(16)) | np.uint32(64)
    return np.where(is_nan, nan_bits, rounded).astype(np.uint16)


def encode(x: np.ndarray, qtype: QT) -> np.ndarray:
    """Encode float32 rows in ``qtype``; returns an array whose bytes are the file data."""
    if qtype == QT.F32:
        return np.ascontiguousarray(x, dtype=np.float32)
    if qtype == QT.F16:
        return np.ascontiguousarray(x, dtype=np.float32).astype(np.float16)
    if qtype == QT.BF16:
        return to_bf16(x)
    if qtype == QT.Q8_0:
        return quantize_q8_0(x)
    if qtype == QT.Q4_0:
        return quantize_q4_0(x)
    if qtype in CORE_TYPES:
        from .. import _core

        x = np.ascontiguousarray(x, dtype=np.float32)
        rows = x.reshape(-1, x.shape[-1])
        return _core.quantize_rows(int(qtype), rows, os.cpu_count() or 1)
    raise ValueError(f"cannot encode tensors as {qtype.name}")


def row_nbytes(n_cols: int, qtype: QT) -> int:
    """Bytes one row of ``n_cols`` values takes in ``qtype``."""
    if qtype == QT.F32:
        return 4 * n_cols
    if qtype in (QT.F16, QT.BF16):
        return 2 * n_cols
    per, size = BLOCK[qtype]
    if n_cols % per:
        raise ValueError(f"row length {n_cols} is not a multiple of {per}")
    return n_cols // per * size


def can_quantize(n_cols: int, qtype: QT) -> bool:
    return qtype not in BLOCK or n_cols % BLOCK[qtype][0] == 0
