"""Streaming GGUF writer.

``gguf.GGUFWriter.add_tensor`` keeps every tensor in memory until the end.
This writer uses the ``gguf`` package only for the header, the key/value
section and the tensor infos (``add_tensor_info`` + ``write_*_to_file``: the
exact byte layout llama.cpp reads), then streams each tensor's data: a
tensor's producer yields encoded chunks of rows, which go straight to the
file.  The output is written to a temporary file in the target directory and
renamed at the end, so a failed conversion leaves no half-written file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import gguf
import numpy as np

from .errors import ConvertError
from .quants import row_nbytes


@dataclass
class PlannedTensor:
    name: str
    shape: tuple[int, ...]  # numpy order (rows, cols); the file stores it reversed
    qtype: gguf.GGMLQuantizationType
    chunks: Callable[[], Iterable[np.ndarray]]  # yields encoded rows, in order

    @property
    def nbytes(self) -> int:
        rows = int(np.prod(self.shape[:-1], dtype=np.int64)) if len(self.shape) > 1 else 1
        return rows * row_nbytes(self.shape[-1], self.qtype)


class StreamingGGUFWriter:
    def __init__(self, outfile: Path, arch: str):
        self.outfile = Path(outfile)
        self.arch = arch
        self.kv = gguf.GGUFWriter(path=None, arch=arch)
        self.tensors: list[PlannedTensor] = []

    def add_tensor(self, t: PlannedTensor) -> None:
        self.tensors.append(t)
        self.kv.add_tensor_info(t.name, t.shape, np.dtype(np.float32), t.nbytes, raw_dtype=t.qtype)

    def write(self, progress: bool | None = None) -> None:
        from tqdm import tqdm

        if not self.outfile.parent.is_dir():  # a typo in the path should not make folders
            raise ConvertError(f"the output folder {self.outfile.parent} does not exist")
        fd, tmp_name = tempfile.mkstemp(prefix=self.outfile.name + ".", suffix=".part", dir=self.outfile.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        w = self.kv
        try:
            w.write_header_to_file(path=tmp)
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            fout = w.fout[0]
            align = w.data_alignment
            total = sum(t.nbytes for t in self.tensors)
            disable = None if progress is None else not progress
            with tqdm(total=total, unit="B", unit_scale=True, desc="writing", disable=disable,
                      file=sys.stderr) as bar:
                self._pad(fout, align)
                for t in self.tensors:
                    bar.set_postfix_str(t.name, refresh=False)
                    written = 0
                    for chunk in t.chunks():
                        data = np.ascontiguousarray(chunk)
                        fout.write(memoryview(data).cast("B"))
                        written += data.nbytes
                        bar.update(data.nbytes)
                    if written != t.nbytes:
                        raise RuntimeError(f"{t.name}: wrote {written} bytes, planned {t.nbytes}")
                    self._pad(fout, align)
            w.close()
            # mkstemp made it 0600; a new file gets the usual 0666 minus the umask
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, self.outfile)
        except BaseException:
            try:
                w.close()
            finally:
                tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _pad(fout, align: int) -> None:
        n = fout.tell() % align
        if n:
            fout.write(b"\0" * (align - n))
