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
        vocab_only: load the tokenizer alone (tokenize / detokenize work;
            there are no weights to evaluate), e.g. a `--vocab-only` file.
        seed: where requests without their own SamplingParams.seed take
            their seeds from; the same seed gives the same texts (None: a
            fresh random seed per request).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, n_threads: Optional[int] = None,
                 n_ctx: Optional[int] = None, kv_type: str = "f16", vocab_only: bool = False,
                 seed: Optional[int] = None):
        if model_path is None:
            from .model_cache import default_model_path
            model_path = default_model_path()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        threads = _check_positive_int("n_threads", n_threads)
        ctx = _check_positive_int("n_ctx", n_ctx)
        if kv_type not in KV_TYPES:
            raise ValueError(f"kv_type must be one of {KV_TYPES}, got {kv_type!r}")
        self.model_path = os.fspath(model_path)
        self._metadata = None
        if vocab_only:
            self._model = None
            self._tokenizer = _core.Tokenizer.load(self.model_path)
        else:
            self._model = _core.Model(self.model_path, threads, ctx, kv_type)
            self._tokenizer = self._model.tokenizer()
        from .generation import Generator
        self._generator = Generator(self, seed)

    # --- facts about the model -------------------------------------------------
    @property
    def vocab_only(self) -> bool:
        return self._model is None

    @property
    def n_vocab(self) -> int:
        return self._tokenizer.n_tokens if self._model is None else self._model.n_vocab

    @property
    def n_ctx(self) -> int:
        return self._weights().n_ctx

    @property
    def n_past(self) -> int:
        """Tokens currently in the KV cache."""
        return self._weights().n_past

    @property
    def n_threads(self) -> int:
        return self._weights().n_threads

    @property
    def kv_type(self) -> str:
        return self._weights().kv_type

    def _weights(self):
        if self._model is None:
            raise HearthError(f"{self.model_path}: loaded with vocab_only=True, so there are no weights to run")
        return self._model

    def _tok(self):
        if self._tokenizer is None:
            raise HearthError(f"{self.model_path}: the file carries no tokenizer (no 'tokenizer.ggml.model'); "
                              "pass token ids instead")
        return self._tokenizer

    @property
    def metadata(self) -> dict:
        """The GGUF metadata, key -> value (arrays as lists)."""
        if self._metadata is None:
            self._metadata = (_core.read_metadata(self.model_path) if self._model is None
                              else self._model.metadata())
        return self._metadata

    @property
    def tensors(self) -> list:
        """(name, type, shape) of every tensor in the file; shape is GGUF's (inner dimension first)."""
        return self._weights().tensors()

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
        return self._weights().eval(ids, all_logits)

    def reset(self) -> None:
        """Empties the KV cache."""
        self._weights().reset()

    def generate_greedy(self, prompt_ids: Iterable[int], max_tokens: int = 16, stop_at_eos: bool = True) -> list:
        """Feeds prompt_ids after what the cache holds and returns up to
        max_tokens greedily chosen new token ids."""
        ids = np.asarray(list(prompt_ids))
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("prompt_ids must be a non-empty sequence of token ids")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
        return self._weights().generate_greedy(ids, int(max_tokens), bool(stop_at_eos))

    # --- generation ------------------------------------------------------------
    def generate(self, prompts, sampling_params: Optional["SamplingParams"] = None, *, stream: bool = False):
        """Completions of prompts (a str, a list of str, a list of token ids,
        or a list of those), as vLLM's LLM.generate: a list of RequestOutput,
        one per prompt (``out.outputs[i].text``; ``out.text`` for the first).

        stream=True (one prompt, n=1): an iterator of text deltas instead,
        each whole characters; they concatenate to the completion's text.
        """
        from .sampling_params import SamplingParams
        params = sampling_params if sampling_params is not None else SamplingParams()
        if not isinstance(params, SamplingParams):
            raise ValueError(f"sampling_params must be a SamplingParams, got {type(params).__name__}")
        if stream:
            return self._generator.stream(prompts, params)
        return self._generator.run(prompts, params)

    def chat(self, messages: list, sampling_params: Optional["SamplingParams"] = None, *, stream: bool = False,
             add_generation_prompt: bool = True, chat_template: Optional[str] = None, **template_kwargs):
        """The model's answer to a conversation ([{"role": ..., "content": ...}, ...]),
        rendered with its own chat template as transformers'
        apply_chat_template(add_generation_prompt=True) does. Returns a
        RequestOutput (stream=True: an iterator of text deltas). A conversation
        that continues the previous one reuses its part of the KV cache."""
        prompt = self.render_chat(messages, add_generation_prompt=add_generation_prompt,
                                  chat_template=chat_template, **template_kwargs)
        ids = self.tokenize(prompt, add_special=False, parse_special=True)  # the template writes BOS if it wants one
        if stream:
            return self.generate(ids, sampling_params, stream=True)
        out = self.generate([ids], sampling_params)[0]
        out.prompt = prompt
        return out

    def render_chat(self, messages: list, add_generation_prompt: bool = True, chat_template: Optional[str] = None,
                    **template_kwargs) -> str:
        """The prompt text chat() feeds the model."""
        from .chat_template import render_chat_template, special_tokens_for, template_from_metadata
        template = chat_template or template_from_metadata(self.metadata)
        if not template:
            raise HearthError(f"{self.model_path}: the file has no chat template (tokenizer.chat_template); "
                              "pass chat_template=... or use generate() with a prompt")
        return render_chat_template(template, messages, add_generation_prompt=add_generation_prompt,
                                    **{**special_tokens_for(self.metadata), **template_kwargs})

    # --- text ------------------------------------------------------------------
    def tokenize(self, text: str | bytes, add_special: bool = True, parse_special: bool = True) -> list:
        """Token ids of text (str, or bytes that need not be valid UTF-8).

        add_special: the BOS/EOS tokens the model asks for (add_bos_token);
        parse_special: special-token strings in the text (``<|im_start|>``)
        become those tokens, as in Hugging Face; otherwise they are text.
        """
        if isinstance(text, str):
            data = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray, memoryview)):
            data = bytes(text)
        else:
            raise ValueError(f"text must be str or bytes, got {type(text).__name__}")
        return self._tok().encode(data, bool(add_special), bool(parse_special))

    def detokenize_bytes(self, token_ids: Iterable[int], special: bool = False) -> bytes:
        """The bytes token_ids stand for (a character may be cut at either end).
        special: show control tokens (``<|im_end|>``) as their text."""
        return self._tok().decode(_ids_list(token_ids), bool(special))

    def detokenize(self, token_ids: Iterable[int], special: bool = False) -> str:
        """The text of token_ids; bytes that are not valid UTF-8 become U+FFFD,
        as bytes.decode(errors="replace")."""
        return self.detokenize_bytes(token_ids, special).decode("utf-8", errors="replace")

    def stream_decoder(self, special: bool = False) -> "_core.StreamDecoder":
        """A decoder fed one token at a time (``.push(id) -> str``, then
        ``.finish() -> str``) that holds back bytes until a character is whole."""
        return _core.StreamDecoder(self._tok(), bool(special))

    def __repr__(self) -> str:
        if self._model is None:
            return f"LLM({self.model_path!r}, vocab_only=True, n_vocab={self.n_vocab})"
        return (f"LLM({self.model_path!r}, arch={self._model.architecture}, n_ctx={self.n_ctx}, "
                f"n_threads={self.n_threads}, kv_type={self.kv_type!r})")


def _ids_list(token_ids) -> list:
    ids = np.asarray(list(token_ids) if not isinstance(token_ids, np.ndarray) else token_ids)
    if ids.size and (ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError("token_ids must be a 1-D sequence of integers")
    return [int(i) for i in ids.reshape(-1)]
