"""llama-quantize's mixes of types per tensor for the K-quant file types
(Q2_K, Q3_K_M, Q4_K_M, Q5_K_M, Q6_K), as llama.cpp's ``llama_tensor_get_type``
chooses them for dense llama-family models without an importance matrix:
the output matrix in q6_K, more bits for some layers' attn_v and ffn_down,
and llama.cpp's fallbacks for rows that are not a multiple of 256.
"""

from __future__ import annotations

from gguf import GGMLQuantizationType as QT
from gguf import LlamaFileType as FT
from gguf import MODEL_TENSOR as T

#: -t value -> (the mix's base type, general.file_type)
K_MIXES: dict[str, tuple[QT, FT]] = {
    "q2_k": (QT.Q2_K, FT.MOSTLY_Q2_K),
    "q3_k_m": (QT.Q3_K, FT.MOSTLY_Q3_K_M),
    "q4_k_m": (QT.Q4_K, FT.MOSTLY_Q4_K_M),
    "q5_k_m": (QT.Q5_K, FT.MOSTLY_Q5_K_M),
    "q6_k": (QT.Q6_K, FT.MOSTLY_Q6_K),
}

#: what llama.cpp writes when a row is not whole super-blocks of 256
FALLBACK = {QT.Q2_K: QT.Q4_0, QT.Q3_K: QT.Q4_0, QT.Q4_K: QT.Q5_0, QT.Q5_K: QT.Q5_1, QT.Q6_K: QT.Q8_0}
K_TYPES = tuple(FALLBACK)


def use_more_bits(i_layer: int, n_layer: int) -> bool:
    """The first and last eighth of the layers, and every third between."""
    return i_layer < n_layer // 8 or i_layer >= 7 * n_layer // 8 or (i_layer - n_layer // 8) % 3 == 2


def compatible(qtype: QT, n_cols: int) -> QT:
    """qtype, or llama.cpp's fallback when rows of n_cols cannot hold it (f16 when neither can)."""
    if qtype in FALLBACK and n_cols % 256:
        qtype = FALLBACK[qtype]
    if qtype not in (QT.F32, QT.F16, QT.BF16) and n_cols % 32:
        return QT.F16
    return qtype


class KMix:
    """Types per 2-D tensor for one K-quant file type; call ``type_for`` in
    the file's tensor order (it counts the attn_v and ffn_down tensors as
    llama.cpp does)."""

    def __init__(self, outtype: str, n_layer: int, n_head: int, n_head_kv: int, pure: bool = False):
        self.outtype = outtype
        self.base = K_MIXES[outtype][0]
        self.n_layer = n_layer
        self.n_gqa = n_head // max(n_head_kv, 1)
        self.pure = pure
        self.i_attn_v = 0
        self.i_ffn_down = 0

    def type_for(self, kind: T, n_cols: int, output_like: bool) -> QT:
        return compatible(self._choose(kind, n_cols, output_like), n_cols)

    def _choose(self, kind: T, n_cols: int, output_like: bool) -> QT:
        mix, t = self.outtype, self.base
        if self.pure:
            return t
        if output_like:  # the output matrix, or the embedding that serves as it
            return QT.Q8_0 if n_cols % 256 else QT.Q6_K
        if kind == T.ATTN_V:
            i, self.i_attn_v = self.i_attn_v, self.i_attn_v + 1
            if mix == "q2_k":
                return QT.Q4_K if self.n_gqa >= 4 else QT.Q3_K
            if mix == "q3_k_m":
                return QT.Q5_K if i < 2 else QT.Q4_K
            if mix in ("q4_k_m", "q5_k_m") and use_more_bits(i, self.n_layer):
                return QT.Q6_K
            return t
        if kind == T.FFN_DOWN:
            i, self.i_ffn_down = self.i_ffn_down, self.i_ffn_down + 1
            if mix == "q2_k":
                return QT.Q3_K
            if mix == "q3_k_m":
                return QT.Q5_K if i < self.n_layer // 16 else QT.Q4_K
            if mix in ("q4_k_m", "q5_k_m") and use_more_bits(i, self.n_layer):
                return QT.Q6_K
            return t
        if kind == T.ATTN_OUT:
            return {"q2_k": QT.Q3_K, "q3_k_m": QT.Q4_K}.get(mix, t)
        return t
