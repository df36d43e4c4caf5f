"""The Python face of a loaded model: a thin layer over hearthlm._core.Model."""

from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import numpy as np

from . import _core

HearthError = _core.HearthError

KV_TYPES = ("f16", "f32")


def _check_positive_int(name: str, value) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


class LLM:
    """A GGUF model loaded for inference.

    Args:
        model_path: a GGUF file (as written by hearth-convert or llama.cpp).
        n_threads: worker threads (default: every CPU this process may use).
        n_ctx: context length in tokens (default: the model's, at most 4096).
        kv_type: element type of the KV cache, "f16" (default, as llama.cpp)
            or "f32" (exact parity with Hugging Face).
    """

    def __init__(self, model_path: str | os.PathLike, n_threads: Optional[int] = None,
                 n_ctx: Optional[int] = None, kv_type: str = "f16"):
        threads = _check_positive_int("n_threads", n_threads)
        ctx = _check_positive_int("n_ctx", n_ctx)
        if kv_type not in KV_TYPES:
            raise ValueError(f"kv_type must be one of {KV_TYPES}, got {kv_type!r}")
        self.model_path = os.fspath(model_path)
        self._model = _core.Model(self.model_path, threads, ctx, kv_type)
        self._metadata = None

    # --- facts about the model -------------------------------------------------
    @property
    def n_vocab(self) -> int:
        return self._model.n_vocab

    @property
    def n_ctx(self) -> int:
        return self._model.n_ctx

    @property
    def n_past(self) -> int:
        """Tokens currently in the KV cache."""
        return self._model.n_past

    @property
    def n_threads(self) -> int:
        return self._model.n_threads

    @property
    def kv_type(self) -> str:
        return self._model.kv_type

    @property
    def metadata(self) -> dict:
        """The GGUF metadata, key -> value (arrays as lists)."""
        if self._metadata is None:
            self._metadata = self._model.metadata()
        return self._metadata

    @property
    def tensors(self) -> list:
        """(name, type, shape) of every tensor in the file; shape is GGUF's (inner dimension first)."""
        return self._model.tensors()

    # --- evaluation ------------------------------------------------------------
    def eval(self, token_ids: Sequence[int] | np.ndarray, all_logits: bool = True) -> np.ndarray:
        """Appends token_ids to the KV cache and returns their logits.

        Returns float32 [len(token_ids), n_vocab] (or [1, n_vocab] for the last
        token only when all_logits is False).
        """
        ids = np.asarray(token_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("token_ids must be a non-empty 1-D sequence of token ids")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
        return self._model.eval(ids, all_logits)

    def reset(self) -> None:
        """Empties the KV cache."""
        self._model.reset()

    def generate_greedy(self, prompt_ids: Iterable[int], max_tokens: int = 16, stop_at_eos: bool = True) -> list:
        """Feeds prompt_ids after what the cache holds and returns up to
        max_tokens greedily chosen new token ids."""
        ids = np.asarray(list(prompt_ids))
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("prompt_ids must be a non-empty sequence of token ids")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
        return self._model.generate_greedy(ids, int(max_tokens), bool(stop_at_eos))

    def __repr__(self) -> str:
        return (f"LLM({self.model_path!r}, arch={self._model.architecture}, n_ctx={self.n_ctx}, "
                f"n_threads={self.n_threads}, kv_type={self.kv_type!r})")
