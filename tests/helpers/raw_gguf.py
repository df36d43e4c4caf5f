"""GGUF files byte by byte, for files no honest writer would make.

The `gguf` package refuses most of the broken files the reader must survive
(duplicate keys, counts that lie, overlapping tensors), so the broken-file
tests build them here: a header, metadata entries and tensor infos serialized
exactly as the format says, with every field open to a lie.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

MAGIC = b"GGUF"
# metadata value types (gguf_type in the format)
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
# tensor types used below (ggml_type)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0 = 0, 1, 2, 8


def gguf_string(s: bytes | str, length: int | None = None) -> bytes:
    """A GGUF string: u64 length then the bytes; length may lie."""
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b) if length is None else length) + b


def kv_u32(key: str, value: int) -> bytes:
    return gguf_string(key) + struct.pack("<II", U32, value)


def kv_string(key: str, value: str) -> bytes:
    return gguf_string(key) + struct.pack("<I", STRING) + gguf_string(value)


def kv_array_header(key: str, elem_type: int, n: int) -> bytes:
    """The start of an array entry: elements must follow (or not, to lie)."""
    return gguf_string(key) + struct.pack("<IIQ", ARRAY, elem_type, n)


def tensor_info(name: str, shape: list[int], ggml_type: int, offset: int) -> bytes:
    return gguf_string(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape) + \
        struct.pack("<IQ", ggml_type, offset)


@dataclass
class RawGGUF:
    """A GGUF file as its parts; counts default to the true ones."""
    kvs: list[bytes] = field(default_factory=lambda: [kv_string("general.architecture", "llama")])
    tensors: list[bytes] = field(default_factory=list)
    data: bytes = b""
    version: int = 3
    n_tensors: int | None = None
    n_kv: int | None = None
    alignment: int = 32

    def to_bytes(self) -> bytes:
        n_tensors = len(self.tensors) if self.n_tensors is None else self.n_tensors
        n_kv = len(self.kvs) if self.n_kv is None else self.n_kv
        head = MAGIC + struct.pack("<IQQ", self.version, n_tensors % (1 << 64), n_kv % (1 << 64))
        head += b"".join(self.kvs) + b"".join(self.tensors)
        pad = (-len(head)) % self.alignment if self.tensors else 0
        return head + b"\0" * pad + self.data

    def write(self, path):
        path.write_bytes(self.to_bytes())
        return path


def f32_tensors(*names_shapes) -> tuple[list[bytes], bytes]:
    """Tensor infos for f32 tensors laid out one after another (32-aligned),
    and their zero data."""
    infos, offset = [], 0
    for name, shape in names_shapes:
        infos.append(tensor_info(name, shape, GGML_F32, offset))
        n = 4
        for d in shape:
            n *= d
        offset += (n + 31) // 32 * 32
    return infos, b"\0" * offset
