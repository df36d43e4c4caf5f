"""The conversion pipeline: folder -> hparams, vocab, tensor plan -> streamed GGUF."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import gguf
import numpy as np
from gguf import GGMLQuantizationType as QT
from gguf import LlamaFileType as FT
from gguf import MODEL_TENSOR as T

from . import arch as archmod
from .errors import ConvertError
from .hf_folder import WeightTensor, load_config, load_weights
from .k_mix import K_MIXES, KMix
from .quants import can_quantize, encode
from .tokenizer import TOKENIZER_FILES, Vocab, load_vocab
from .writer import PlannedTensor, StreamingGGUFWriter

log = logging.getLogger("hearth-convert")

#: -t value -> (type of 2-D weights, general.file_type)
OUTTYPES: dict[str, tuple[QT, FT]] = {
    "f32": (QT.F32, FT.ALL_F32),
    "f16": (QT.F16, FT.MOSTLY_F16),
    "bf16": (QT.BF16, FT.MOSTLY_BF16),
    "q8_0": (QT.Q8_0, FT.MOSTLY_Q8_0),
    "q4_0": (QT.Q4_0, FT.MOSTLY_Q4_0),
    **K_MIXES,
}

#: -t types whose output matrix llama.cpp keeps at higher precision (q6_K
#: there; q8_0 here for a q4_0 file, which is K-quant free), unless --pure
OUTPUT_TYPE = {QT.Q4_0: QT.Q8_0}

#: Qwen2-Instruct's chat template, which writes Qwen v1's "chatml" format too
QWEN_CHATML_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")

CHUNK_BYTES = 16 << 20  # float32 bytes of rows converted at a time (quantizing takes ~6x that)


@dataclass
class Hparams:
    n_ctx: int
    n_embd: int
    n_layer: int
    n_ff: int
    n_head: int
    n_head_kv: int
    rope_theta: float
    rms_eps: float
    head_dim: int
    head_dim_explicit: bool
    rope_dim: int  # dimensions of a head RoPE rotates (head_dim x partial_rotary_factor)
    vocab_size: int | None
    tied: bool | None  # None: decide from the weights
    rope_scaling: tuple[str, float] | None


def _need(config: dict, *keys: str):
    for k in keys:
        if config.get(k) is not None:
            return config[k]
    raise ConvertError(f"config.json has no {keys[0]!r}")


def rope_settings(config: dict) -> tuple[float, tuple[str, float] | None]:
    """RoPE base and (scaling type, factor), from ``rope_theta`` or transformers 5's ``rope_parameters``."""
    params = config.get("rope_parameters") or config.get("rope_scaling") or {}
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        raise ConvertError("per-layer-type rope_parameters (sliding / full attention) are not supported")
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    if theta is None:
        theta = config.get("rope_theta", 10000.0)
    kind = (params.get("rope_type") or params.get("type") or "default") if isinstance(params, dict) else "default"
    if kind == "default":
        return float(theta), None
    if kind == "linear" and params.get("factor") is not None:
        return float(theta), ("linear", float(params["factor"]))
    raise ConvertError(f"RoPE scaling type {kind!r} is not supported (only default and linear); "
                       f"rope parameters: {params}")


def read_hparams(config: dict, spec: archmod.ArchSpec) -> Hparams:
    n_embd = int(_need(config, "hidden_size"))
    n_head = int(_need(config, "num_attention_heads"))
    theta, scaling = rope_settings(config)
    head_dim = config.get("head_dim")
    tied = config.get("tie_word_embeddings")
    rope_params = config.get("rope_parameters") or {}
    partial = config.get("partial_rotary_factor") or (
        rope_params.get("partial_rotary_factor") if isinstance(rope_params, dict) else None) or 1.0
    dim = int(head_dim) if head_dim else n_embd // n_head
    return Hparams(
        n_ctx=int(_need(config, "max_position_embeddings")),
        n_embd=n_embd,
        n_layer=int(_need(config, "num_hidden_layers")),
        n_ff=int(_need(config, "intermediate_size")),
        n_head=n_head,
        n_head_kv=int(config.get("num_key_value_heads") or n_head),
        rope_theta=theta,
        rms_eps=float(config.get("rms_norm_eps", 1e-6)),
        head_dim=dim,
        head_dim_explicit=bool(head_dim),
        rope_dim=int(dim * float(partial)),
        vocab_size=int(config["vocab_size"]) if config.get("vocab_size") else None,
        tied=None if tied is None else bool(tied),
        rope_scaling=scaling,
    )


def add_hparams(w: gguf.GGUFWriter, hp: Hparams, n_vocab: int | None) -> None:
    """The ``{arch}.*`` keys, named as llama.cpp names them."""
    w.add_context_length(hp.n_ctx)
    w.add_embedding_length(hp.n_embd)
    w.add_block_count(hp.n_layer)
    w.add_feed_forward_length(hp.n_ff)
    w.add_head_count(hp.n_head)
    w.add_head_count_kv(hp.n_head_kv)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_layer_norm_rms_eps(hp.rms_eps)
    w.add_rope_dimension_count(hp.rope_dim)
    if hp.head_dim_explicit:
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.head_dim)
    if hp.rope_scaling is not None:
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(hp.rope_scaling[1])
    if n_vocab is not None:
        w.add_vocab_size(n_vocab)


def resolve_model(model: str, vocab_only: bool = False, hub: str | None = None) -> Path:
    """A local folder, or a hub id (owner/name) fetched from the Hugging Face Hub
    (or ModelScope: hub="modelscope", $HEARTH_USE_MODELSCOPE=True)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ConvertError(f"{model}: not a folder (MODEL is a Hugging Face model folder or hub id)")
    parts = model.split("/")
    if len(parts) == 2 and all(parts) and not model.startswith((".", "/", "~")):
        from ..errors import ModelFetchError
        from ..hub import snapshot

        patterns = ["*.json", "tokenizer.model", "qwen.tiktoken", "*.jinja", "*.txt"]
        if not vocab_only:
            patterns.append("*.safetensors")
        try:
            return snapshot(model, patterns, hub)
        except ModelFetchError as e:
            raise ConvertError(f"{model}: no such folder, and {e}") from None
    raise ConvertError(f"{model}: no such folder")


def _plan_type(name_kind: T, data: WeightTensor, weight_type: QT, pure: bool, output_like: bool) -> QT:
    if len(data.shape) <= 1:
        return QT.F32  # norms and biases
    qt = weight_type
    if output_like and not pure:
        qt = OUTPUT_TYPE.get(qt, qt)
    if not can_quantize(data.shape[-1], qt):
        log.warning("%s: row length %d is not a multiple of 32, cannot be %s: writing it as F16",
                    data.name, data.shape[-1], qt.name)
        qt = QT.F16
    return qt


def _chunks(t: WeightTensor, qtype: QT, perm: np.ndarray | None) -> Iterator[np.ndarray]:
    if len(t.shape) <= 1:
        data = t.read().reshape(-1)
        yield encode(data if perm is None else data[perm], qtype)  # llama's q/k biases are permuted too
        return
    row_bytes = 4 * int(np.prod(t.shape[1:], dtype=np.int64))
    step = max(1, CHUNK_BYTES // max(row_bytes, 1))
    for r0 in range(0, t.shape[0], step):
        r1 = min(r0 + step, t.shape[0])
        rows = t.read(slice(r0, r1) if perm is None else perm[r0:r1])
        yield encode(rows.reshape(r1 - r0, -1), qtype)


def convert(model: str | Path, outfile: str | Path, outtype: str = "f16", *, pure: bool = False,
            vocab_only: bool = False, progress: bool | None = None, hub: str | None = None) -> Path:
    """Convert a Hugging Face folder (or hub id) to one GGUF file; returns its path."""
    if outtype not in OUTTYPES:
        raise ConvertError(f"unknown output type {outtype!r}; choose one of: {', '.join(OUTTYPES)}")
    folder = resolve_model(str(model), vocab_only, hub)
    outfile = Path(outfile)
    weight_type, file_type = OUTTYPES[outtype]

    if vocab_only and not (folder / "config.json").is_file():
        return _vocab_only_without_config(folder, outfile, progress)

    config = load_config(folder)
    spec = archmod.spec_for_config(config)
    if spec.normalize_config:
        config = spec.normalize_config(config)
    hp = read_hparams(config, spec)

    tensors: dict[str, WeightTensor] = {}
    n_vocab = hp.vocab_size
    if not vocab_only:
        tensors = {n: t for n, t in load_weights(folder).items() if not n.endswith(archmod.IGNORED_SUFFIXES)}
        if spec.rename_tensor:
            tensors = {spec.rename_tensor(n): t for n, t in tensors.items()}
        embd = tensors.get("model.embed_tokens.weight")
        if embd is None:
            raise ConvertError(f"{folder}: the weights have no model.embed_tokens.weight")
        n_vocab = embd.shape[0]

    vocab = load_vocab(folder, spec.name, n_vocab)
    if vocab is not None and vocab.chat_template is None and spec.arch == gguf.MODEL_ARCH.QWEN:
        # Qwen v1 keeps its chat format in Python code (make_context, "chatml"):
        # ChatML with "You are a helpful assistant.", which is Qwen2-Instruct's template
        vocab.chat_template = QWEN_CHATML_TEMPLATE
    if vocab is None:
        if vocab_only:
            raise ConvertError(f"{folder}: --vocab-only, but no tokenizer file ({', '.join(TOKENIZER_FILES)})")
        log.warning("%s: no tokenizer file (%s); writing the weights only", folder, ", ".join(TOKENIZER_FILES))

    w = StreamingGGUFWriter(outfile, spec.name)
    kv = w.kv
    kv.add_type(gguf.GGUFType.MODEL)
    kv.add_name(folder.name if Path(str(model)).is_dir() else str(model))
    add_hparams(kv, hp, n_vocab)
    kv.add_file_type(file_type)
    kv.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if vocab is not None:
        vocab.add_to(kv)

    if not vocab_only:
        mix = KMix(outtype, hp.n_layer, hp.n_head, hp.n_head_kv, pure) if outtype in K_MIXES else None
        for t in _plan_tensors(spec, hp, tensors, weight_type, pure, mix):
            w.add_tensor(t)
    w.write(progress=progress)
    return outfile


def _plan_tensors(spec: archmod.ArchSpec, hp: Hparams, tensors: dict[str, WeightTensor],
                  weight_type: QT, pure: bool, mix: KMix | None = None) -> list[PlannedTensor]:
    has_lm_head = "lm_head.weight" in tensors
    if hp.tied is None:
        tied = not has_lm_head
    else:
        tied = hp.tied
        if not tied and not has_lm_head:
            raise ConvertError("config.json says tie_word_embeddings is false, but the weights have no lm_head.weight")
    if tied and has_lm_head:
        log.info("tied embeddings: lm_head.weight is a copy of the token embedding; not written")
        del tensors["lm_head.weight"]

    mapped = []
    for name, t in tensors.items():
        kind, bid, suffix = archmod.map_name(spec, name)
        if bid is not None and bid >= hp.n_layer:
            raise ConvertError(f"tensor {name!r} is for layer {bid}, but config.json has {hp.n_layer} layers")
        mapped.append((kind, bid, suffix, t))
    # llama.cpp's order: token_embd, then block by block, then output_norm / output
    order = {T.TOKEN_EMBD: 0, T.OUTPUT_NORM: 2, T.OUTPUT: 3}
    block_order = [T.ATTN_NORM, T.ATTN_Q, T.ATTN_K, T.ATTN_V, T.ATTN_OUT, T.FFN_NORM, T.FFN_GATE, T.FFN_UP, T.FFN_DOWN]
    mapped.sort(key=lambda m: (order.get(m[0], 1), m[1] if m[1] is not None else -1,
                               block_order.index(m[0]) if m[0] in block_order else 99, m[2] != "weight"))

    planned = []
    for kind, bid, suffix, t in mapped:
        output_like = kind == T.OUTPUT or (kind == T.TOKEN_EMBD and tied)
        if mix is not None and len(t.shape) >= 2:
            qtype = mix.type_for(kind, t.shape[-1], output_like)
            if qtype == QT.F16:
                log.warning("%s: row length %d is not a multiple of 32, cannot be quantized: writing it as F16",
                            t.name, t.shape[-1])
        else:
            qtype = _plan_type(kind, t, weight_type, pure, output_like)
        perm = None
        if spec.permute_qk and kind in (T.ATTN_Q, T.ATTN_K):
            heads = hp.n_head if kind == T.ATTN_Q else hp.n_head_kv
            perm = archmod.qk_row_permutation(t.shape[0], heads)
        shape = tuple(t.shape) if t.shape else (1,)
        planned.append(PlannedTensor(archmod.gguf_name(kind, bid, suffix), shape, qtype,
                                     lambda t=t, qtype=qtype, perm=perm: _chunks(t, qtype, perm)))
    names = {p.name for p in planned}
    missing = [n for n in (archmod.gguf_name(T.TOKEN_EMBD, None, "weight"), archmod.gguf_name(T.OUTPUT_NORM, None, "weight"))
               if n not in names]
    if missing:
        raise ConvertError(f"the weights lack {', '.join(missing)}")
    return planned


def _vocab_only_without_config(folder: Path, outfile: Path, progress: bool | None) -> Path:
    """--vocab-only on a folder with a tokenizer but no config.json: tokenizer keys only.

    llama.cpp's converter needs config.json even then; we write what the
    tokenizer determines (architecture qwen2 for Qwen tokenizers, else llama)
    so that tokenizer tests need no model.
    """
    source_arch = "llama"
    vocab: Vocab | None = load_vocab(folder, "llama", None)
    if vocab is None:
        raise ConvertError(f"{folder}: --vocab-only, but no tokenizer file ({', '.join(TOKENIZER_FILES)})")
    if vocab.pre == "qwen2":
        source_arch = "qwen2"
    log.warning("%s: no config.json; writing the tokenizer with general.architecture = %s and no hyperparameters",
                folder, source_arch)
    w = StreamingGGUFWriter(outfile, source_arch)
    w.kv.add_type(gguf.GGUFType.MODEL)
    w.kv.add_name(folder.name)
    w.kv.add_vocab_size(len(vocab.tokens))
    vocab.add_to(w.kv)
    w.write(progress=progress)
    return outfile
