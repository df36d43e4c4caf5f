"""Small GGUF files written with the `gguf` package (llama.cpp's own writer),
independent of our converter: valid tiny models and deliberately broken ones."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np

TINY = dict(n_vocab=256, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=96, n_ctx=128)


# Per-tensor types of the mixed weight types: k_mix has every K type (q4_K
# and q6_K most, as in a Q4_K_M file); mix puts the row-tile types (q4_0,
# q4_1, q8_0) beside the types that read the activations' groups (q5_0,
# q5_1) in one forward pass, as llama.cpp's mixed files do.
MIXES = {
    "k_mix": {"attn_q": "Q4_K", "attn_k": "Q3_K", "attn_v": "Q6_K", "attn_output": "Q5_K", "ffn_gate": "Q4_K",
              "ffn_up": "Q2_K", "ffn_down": "Q6_K", "output": "Q6_K", "token_embd": "Q4_K"},
    "mix": {"attn_q": "Q4_0", "attn_k": "Q5_0", "attn_v": "Q8_0", "attn_output": "Q4_1", "ffn_gate": "Q5_1",
            "ffn_up": "Q4_0", "ffn_down": "Q5_0", "output": "Q8_0", "token_embd": "Q4_1"},
}


def write_tiny_model(path: Path, arch: str = "llama", seed: int = 0, weight_type: str = "f32",
                     tied: bool = False, **overrides) -> Path:
    """A random model in llama.cpp's layout. weight_type: f32|f16|q8_0|q4_0|q4_1|q5_0|q5_1
    for the 2-D weights (norms and biases stay f32), or a mix of types per
    tensor (MIXES): k_mix, random K-quant blocks (n_embd and n_ff must be
    multiples of 256), or mix, row-tile and q5 types together."""
    hp = dict(TINY, **overrides)
    rng = np.random.default_rng(seed)
    E, F, V = hp["n_embd"], hp["n_ff"], hp["n_vocab"]
    hd = E // hp["n_head"]
    w = gguf.GGUFWriter(str(path), arch)
    w.add_context_length(hp["n_ctx"])
    w.add_embedding_length(E)
    w.add_block_count(hp["n_layer"])
    w.add_feed_forward_length(F)
    w.add_head_count(hp["n_head"])
    w.add_head_count_kv(hp["n_head_kv"])
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    qtype = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
             "q8_0": gguf.GGMLQuantizationType.Q8_0, "q4_0": gguf.GGMLQuantizationType.Q4_0,
             "q4_1": gguf.GGMLQuantizationType.Q4_1, "q5_0": gguf.GGMLQuantizationType.Q5_0,
             "q5_1": gguf.GGMLQuantizationType.Q5_1, "k_mix": None, "mix": None}[weight_type]
    mix_types = MIXES.get(weight_type)

    def matrix(name, rows, cols, scale=0.2):
        t = gguf.GGMLQuantizationType[mix_types[name.split(".")[-2]]] if mix_types else qtype
        if t.name.endswith("_K"):
            w.add_tensor(name, random_k_blocks(t, rows, cols, scale, rng), raw_dtype=t)
            return
        a = (rng.standard_normal((rows, cols)) * scale).astype(np.float32)
        if t == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, a)
        elif t == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(a, t), raw_dtype=t)

    def vector(name, n, center=1.0, scale=0.1):
        w.add_tensor(name, (center + rng.standard_normal(n) * scale).astype(np.float32))

    matrix("token_embd.weight", V, E, scale=1.0)
    for i in range(hp["n_layer"]):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", E)
        matrix(p + "attn_q.weight", hp["n_head"] * hd, E)
        matrix(p + "attn_k.weight", hp["n_head_kv"] * hd, E)
        matrix(p + "attn_v.weight", hp["n_head_kv"] * hd, E)
        if arch == "qwen2":
            vector(p + "attn_q.bias", hp["n_head"] * hd, 0.0, 0.5)
            vector(p + "attn_k.bias", hp["n_head_kv"] * hd, 0.0, 0.5)
            vector(p + "attn_v.bias", hp["n_head_kv"] * hd, 0.0, 0.5)
        matrix(p + "attn_output.weight", E, hp["n_head"] * hd)
        vector(p + "ffn_norm.weight", E)
        matrix(p + "ffn_gate.weight", F, E)
        matrix(p + "ffn_up.weight", F, E)
        matrix(p + "ffn_down.weight", E, F)
    vector("output_norm.weight", E)
    if not tied:
        matrix("output.weight", V, E)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


# K-quant block sizes, and where each block keeps its fp16 d (and dmin)
K_BLOCK_BYTES = {"Q2_K": 84, "Q3_K": 110, "Q4_K": 144, "Q5_K": 176, "Q6_K": 210}
K_SCALES_AT = {"Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
# the typical |scale * q| (and |min|) of random bytes, to size d (and dmin)
K_TYPICAL = {"Q2_K": [11, 7.5], "Q3_K": [32], "Q4_K": [240, 32], "Q5_K": [480, 32], "Q6_K": [1024]}


def random_k_blocks(qtype, rows, cols, scale, rng):
    """rows x cols weights of a K type as random blocks: random quants and
    sub-block scales, fp16 d (and dmin) that make values of about +-scale."""
    name = qtype.name
    nb = rows * cols // 256
    raw = rng.integers(0, 256, size=(nb, K_BLOCK_BYTES[name]), dtype=np.uint8)
    for at, typical in zip(K_SCALES_AT[name], K_TYPICAL[name]):
        d = (rng.uniform(0.5, 1.5, nb) * scale / typical).astype(np.float16)
        raw[:, at:at + 2] = d.view(np.uint8).reshape(-1, 2)
    return raw.reshape(rows, -1)


def tensor_info_offset_position(path: Path, tensor_name: str) -> int:
    """Byte position of the data-offset field in a tensor's info record."""
    data = Path(path).read_bytes()
    name = tensor_name.encode()
    # the record is: u64 name length, name, u32 n_dims, u64 dims[n_dims], u32 type, u64 offset
    pos = data.index(len(name).to_bytes(8, "little") + name) + 8 + len(name)
    n_dims = int.from_bytes(data[pos:pos + 4], "little")
    return pos + 4 + 8 * n_dims + 4


def write_with_unsupported_type(path: Path) -> Path:
    """A model-like file holding an iq2_xxs tensor (a type hearth cannot read)."""
    w = gguf.GGUFWriter(str(path), "llama")
    q = gguf.GGMLQuantizationType.IQ2_XXS
    raw = np.zeros((4, 66), dtype=np.uint8)  # 4 rows of one 256-element iq2_xxs block
    w.add_tensor("token_embd.weight", raw, raw_dtype=q)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path
