"""Reading a Hugging Face model folder: config.json and the weights.

Safetensors are parsed here from a memory map (8-byte little-endian header
length, a JSON header, then the raw data), so that no tensor is copied before
it is needed and bf16 needs no numpy support: its 16 bits are the top half of
a float32.  ``model.safetensors.index.json`` names the shards of a sharded
checkpoint.  ``pytorch_model*.bin`` is read with torch, only when torch is
installed (the ``hearthlm[torch]`` extra).
"""

from __future__ import annotations

import json
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import ConvertError

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64}


def load_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise ConvertError(f"{folder}: no config.json (is this a Hugging Face model folder?)")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: cannot read it as JSON: {e}") from None
    if not isinstance(config, dict):
        raise ConvertError(f"{path}: expected a JSON object")
    if isinstance(config.get("text_config"), dict):
        # multimodal wrappers keep the language model's hparams here
        config = {**config, **config["text_config"]}
    return config


@dataclass
class WeightTensor:
    """One checkpoint tensor; ``read(rows)`` gives those rows as float32."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "F32", "F16", "BF16", ... as safetensors names them
    _read: Callable[[np.ndarray | slice | None], np.ndarray]

    @property
    def n_rows(self) -> int:
        return self.shape[0] if self.shape else 1

    def read(self, rows: np.ndarray | slice | None = None) -> np.ndarray:
        """Rows (a slice or an index array along axis 0; all when None) as float32."""
        return self._read(rows)


class SafetensorsFile:
    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = open(path, "rb")
            size = path.stat().st_size
            if size < 8:
                raise ConvertError(f"{path}: truncated safetensors file ({size} bytes)")
            (n,) = struct.unpack("<Q", self._file.read(8))
            if n > size - 8:
                raise ConvertError(f"{path}: header length {n} runs past the end of the file")
            header = json.loads(self._file.read(n))
            self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + n else None
        except (OSError, ValueError) as e:
            if isinstance(e, ConvertError):
                raise
            raise ConvertError(f"{path}: not a readable safetensors file: {e}") from None
        self._data_start = 8 + n
        self._data_size = size - self._data_start
        self.header = {k: v for k, v in header.items() if k != "__metadata__"}

    def tensors(self) -> Iterator[WeightTensor]:
        for name, info in self.header.items():
            dtype = info.get("dtype")
            shape = tuple(int(s) for s in info.get("shape", []))
            start, end = info.get("data_offsets", (0, 0))
            if dtype not in _ST_DTYPES:
                raise ConvertError(f"{self.path}: tensor {name!r} has dtype {dtype}, "
                                   f"which the converter does not read (F32, F16, BF16)")
            np_dtype = np.dtype(_ST_DTYPES[dtype])
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if end - start != count * np_dtype.itemsize or end > self._data_size:
                raise ConvertError(f"{self.path}: tensor {name!r} has inconsistent offsets "
                                   f"(truncated or corrupt file)")
            yield WeightTensor(name, shape, dtype, self._reader(start, shape, np_dtype, dtype))

    def _reader(self, start: int, shape: tuple[int, ...], np_dtype: np.dtype, dtype: str):
        def read(rows=None) -> np.ndarray:
            count = int(np.prod(shape, dtype=np.int64)) if shape else 1
            raw = np.frombuffer(self._map, dtype=np_dtype, count=count, offset=self._data_start + start) \
                if count else np.zeros(0, np_dtype)
            arr = raw.reshape(shape if shape else ())
            if rows is not None and arr.ndim >= 1:
                arr = arr[rows]
            if dtype == "BF16":
                return (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)
            return arr.astype(np.float32)

        return read


def _torch_tensors(path: Path) -> Iterator[WeightTensor]:
    try:
        import torch
    except ImportError:
        raise ConvertError(f"{path.parent}: the weights are in {path.name} (PyTorch pickle); reading it "
                           f"needs torch: pip install hearthlm[torch]  (or save the model as safetensors)") from None
    try:
        try:  # memory-mapped: tensors are read when converted
            state = torch.load(str(path), map_location="cpu", mmap=True, weights_only=True)
        except RuntimeError:  # files from torch < 1.6 (not zip) cannot be memory-mapped
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds; all mean "cannot read this file"
        raise ConvertError(f"{path}: cannot load it with torch: {e}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    for name, t in state.items():
        if not hasattr(t, "dtype"):
            continue
        names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
        if t.dtype not in names:
            raise ConvertError(f"{path}: tensor {name!r} has dtype {t.dtype}, which the converter does not read")

        def read(rows=None, t=t):
            x = t if rows is None or t.dim() == 0 else t[torch.as_tensor(rows) if isinstance(rows, np.ndarray) else rows]
            return x.to(torch.float32).numpy()

        yield WeightTensor(name, tuple(t.shape), names[t.dtype], read)


def _parts(folder: Path, prefix: str, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(suffix) and p.is_file())


def load_weights(folder: Path) -> dict[str, WeightTensor]:
    """All checkpoint tensors by Hugging Face name, lazily readable."""
    st_index = folder / "model.safetensors.index.json"
    bin_index = folder / "pytorch_model.bin.index.json"
    files: list[Path]
    expected: set[str] = set()
    if st_index.is_file() or bin_index.is_file():
        index_path = st_index if st_index.is_file() else bin_index
        try:
            with open(index_path, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ConvertError(f"{index_path}: cannot read its weight_map: {e}") from None
        expected = set(weight_map)
        files = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [p.name for p in files if not p.is_file()]
        if missing:
            raise ConvertError(f"{folder}: {index_path.name} names shard(s) that are missing: {', '.join(missing)}")
    else:
        files = _parts(folder, "model", ".safetensors") or _parts(folder, "pytorch_model", ".bin")
    if not files:
        raise ConvertError(f"{folder}: no weights found (expected model.safetensors, "
                           f"model-*-of-*.safetensors with model.safetensors.index.json, or pytorch_model*.bin)")
    tensors: dict[str, WeightTensor] = {}
    for path in files:
        source = SafetensorsFile(path).tensors() if path.suffix == ".safetensors" else _torch_tensors(path)
        for t in source:
            tensors[t.name] = t
    if expected and expected != set(tensors):
        missing = sorted(expected - set(tensors))
        raise ConvertError(f"{folder}: the shards lack tensors the index names: {', '.join(missing[:5])}"
                           + (" ..." if len(missing) > 5 else ""))
    return tensors
