"""LLMEngine: the engine loop with vLLM's shape, over hearthlm._core.Engine.

    engine = LLMEngine("model.gguf", max_num_seqs=16)
    engine.add_request("a", "The capital of France is", SamplingParams(max_tokens=16))
    engine.add_request("b", [504, 3458, 282], SamplingParams(temperature=0.8, seed=1))
    while engine.has_unfinished_requests():
        for out in engine.step():          # each request's new tokens and text since the last step
            print(out.request_id, out.outputs[0].text, out.finished)

Each step() runs one forward pass over every running request (decode rows
and prefill chunks under a token budget) with the GIL released; a request's
output does not depend on what else runs with it.
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Dict, Iterable, List, Optional, Union

import numpy as np

from . import _core
from .errors import HearthError
from .outputs import CompletionOutput, Logprob, RequestOutput
from .sampling_params import SamplingParams
from .structured import GrammarCompiler, Matcher

KV_TYPES = ("f16", "f32", "q8_0")

PromptType = Union[str, List[int], dict]


def normalize_prompts(prompts) -> List[dict]:
    """str | list[str] | list[int] (one prompt of ids) | list[list[int]] |
    {"prompt": ...} / {"prompt_token_ids": [...]} dicts -> [{"prompt"|"prompt_token_ids": ...}]."""
    def one(p):
        if isinstance(p, str):
            return {"prompt": p}
        if isinstance(p, dict) and ("prompt" in p or "prompt_token_ids" in p):
            p = dict(p)
            if "prompt_token_ids" in p:
                ids = p["prompt_token_ids"]
                if not isinstance(ids, (list, tuple, np.ndarray)) or not all(_is_id(t) for t in ids):
                    raise HearthError(f"prompt_token_ids must be a list of integer token ids, got {ids!r:.80}",
                                      param="prompt_token_ids")
                p["prompt_token_ids"] = [int(t) for t in ids]
            elif not isinstance(p["prompt"], str):
                raise HearthError(f"prompt must be a str, got {type(p['prompt']).__name__}", param="prompt")
            return p
        if isinstance(p, (list, tuple, np.ndarray)) and all(_is_id(t) for t in p):
            return {"prompt_token_ids": [int(t) for t in p]}
        hint = " (decode bytes to str first)" if isinstance(p, (bytes, bytearray)) else ""
        raise HearthError(f"a prompt must be a str, a list of token ids or a dict, got {type(p).__name__}{hint}",
                          param="prompt")

    if isinstance(prompts, (str, dict, bytes, bytearray)) or prompts is None:
        return [one(prompts)]  # bytes are not a list of token ids: refused, not read as one
    try:
        prompts = list(prompts)
    except TypeError:
        raise HearthError(f"prompts must be a prompt or a list of prompts, got {type(prompts).__name__}",
                          param="prompt") from None
    if prompts and all(_is_id(t) for t in prompts):
        return [one(prompts)]  # a single prompt given as token ids
    if not prompts:
        raise HearthError("prompts is empty", param="prompt")
    return [one(p) for p in prompts]


def encode(tokenizer, text, add_special: bool = True, parse_special: bool = True) -> List[int]:
    """Token ids of text (str, or bytes that need not be valid UTF-8)."""
    if isinstance(text, str):
        data = text.encode("utf-8")
    elif isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
    else:
        raise ValueError(f"text must be str or bytes, got {type(text).__name__}")
    return tokenizer.encode(data, bool(add_special), bool(parse_special))


def _int64_ids(ids: List[int], n_vocab: int) -> np.ndarray:
    """ids for the core, which checks them against the vocabulary; one past
    int64 cannot reach it, so it gets the core's error here."""
    try:
        return np.asarray(ids, dtype=np.int64)
    except OverflowError:
        bad = next(t for t in ids if not -2 ** 63 <= t < 2 ** 63)
        raise HearthError(f"prompt token id {bad} is out of range [0, {n_vocab})", param="prompt") from None


def _locked(method):
    """Runs the method under the engine's lock: one LLMEngine may be used
    from several threads (one step, add or abort at a time; a step releases
    the GIL, and the C++ engine is not to be touched while it runs)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return locked


def _is_id(t) -> bool:
    return isinstance(t, (int, np.integer)) and not isinstance(t, bool)


def _positive_int(name: str, value, allow_none=True, at_most: int = 2 ** 63 - 1) -> int:
    if value is None and allow_none:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}")
    if value > at_most:  # what the C++ field holds
        raise ValueError(f"{name} must be at most {at_most}, got {value}")
    return int(value)


class LLMEngine:
    """Continuous batching over one model (vLLM's LLMEngine).

    Args:
        model: a GGUF file (None: the default model, fetched once).
        n_threads: worker threads (default: every CPU this process may use).
        n_ctx: the longest a sequence may grow, prompt and output (default:
            the model's context, at most 4096).
        kv_type: "f16" (default, as llama.cpp), "f32" (exact parity) or
            "q8_0" (8-bit keys and values, as llama.cpp's q8_0 cache: 17/32 of
            f16's memory, and faster decoding deep into long sequences).
        activations: how quantized weights' matmuls round their inputs:
            "q8" (default: 8 bits per activation, fast, as llama.cpp) or "q16"
            (16 bits: nearly exact, slower).
        kv_cache_tokens: the KV pool shared by all requests, in tokens
            (default: n_ctx × min(max_num_seqs, 4), at most 1 GiB unless one
            context needs more); memory is touched only as it is used.
        max_num_seqs: requests running at once (default 16).
        max_num_batched_tokens: rows per step, decode rows and prefill
            chunks together (default 512).
        enable_prefix_caching: keep full KV blocks for later requests that
            begin the same way (default True).
    """

    def __init__(self, model: Union[str, os.PathLike, None] = None, *, n_threads: Optional[int] = None,
                 n_ctx: Optional[int] = None, kv_type: str = "f16", activations: str = "q8",
                 kv_cache_tokens: Optional[int] = None, max_num_seqs: int = 16, max_num_batched_tokens: int = 512,
                 enable_prefix_caching: bool = True, _loaded=None):
        threads = _positive_int("n_threads", n_threads, at_most=2 ** 31 - 1)
        ctx = _positive_int("n_ctx", n_ctx)
        kv_tokens = _positive_int("kv_cache_tokens", kv_cache_tokens)
        seqs = _positive_int("max_num_seqs", max_num_seqs, allow_none=False, at_most=2 ** 31 - 1)
        batched = _positive_int("max_num_batched_tokens", max_num_batched_tokens, allow_none=False)
        if kv_type not in KV_TYPES:
            raise ValueError(f"kv_type must be one of {KV_TYPES}, got {kv_type!r}")
        if _loaded is not None:
            self.model_path, self._model, self._tokenizer = _loaded
        else:
            if model is None:
                from .model_cache import default_model_path
                model = default_model_path()
            self.model_path = os.fspath(model)
            self._model = _core.Model(self.model_path, threads, activations)
            self._tokenizer = _core.Tokenizer.from_model(self._model)
        self._engine = _core.Engine(self._model, self._tokenizer, ctx, kv_type, kv_tokens, seqs, batched,
                                    bool(enable_prefix_caching))
        self._prompts: Dict[str, tuple] = {}  # request id -> (prompt text or None, prompt ids, wants logprobs)
        self._token_text: Dict[int, str] = {}
        self._grammars: Optional[GrammarCompiler] = None
        self._grammars_lock = threading.Lock()
        self._matchers: Dict[str, List[Matcher]] = {}  # structured requests: a matcher per completion
        self._lock = threading.RLock()  # see _locked

    # --- requests --------------------------------------------------------------
    @_locked
    def add_request(self, request_id: str, prompt: PromptType, params: Optional[SamplingParams] = None,
                    *, seed: Optional[int] = None, max_tokens_must_fit: bool = False,
                    matchers: Optional[List[Matcher]] = None) -> None:
        """Queues a request: prompt is a str, a list of token ids, or vLLM's
        {"prompt": ...} / {"prompt_token_ids": [...]}. Raises HearthError
        (nothing queued) for an id in use, an empty prompt or one too long
        for the context, or parameters out of range. seed: used when params
        has none. A max_tokens past the context ends the completion there
        (finish_reason "length"), unless max_tokens_must_fit: then it is
        refused, as vLLM's server refuses it. matchers: structured_matchers'
        result for params, made ahead (a server compiles grammars off the
        thread that steps)."""
        if not isinstance(request_id, str):
            raise ValueError(f"request_id must be a str, got {type(request_id).__name__}")
        params = params if params is not None else SamplingParams()
        if not isinstance(params, SamplingParams):
            raise ValueError(f"params must be a SamplingParams, got {type(params).__name__}")
        reqs = normalize_prompts(prompt)
        if len(reqs) != 1:
            raise HearthError(f"add_request takes one prompt (a str, a list of token ids or a dict), got {len(reqs)}",
                              param="prompt")
        text, ids = self.prompt_ids(reqs[0])
        fits_prompt = len(ids) < self.n_ctx  # else the prompt itself is refused, below
        if max_tokens_must_fit and fits_prompt and params.max_tokens is not None and len(ids) + params.max_tokens > self.n_ctx:
            raise HearthError(f"max_tokens is too large: {params.max_tokens}. This model's maximum context length is "
                              f"{self.n_ctx} tokens and the request has {len(ids)} input tokens "
                              f"({params.max_tokens} > {self.n_ctx} - {len(ids)})", param="max_tokens")
        if params.structured_outputs is None:
            matchers = None
        elif matchers is None:
            matchers = self.structured_matchers(params)
        core = params.to_core(seed)
        if params.bad_words:
            core.generation.bad_words_ids = self.bad_words_ids(params.bad_words)
        self._engine.add_request(request_id, _int64_ids(ids, self.n_vocab), core)
        self._prompts[request_id] = (text, ids, params.logprobs is not None)
        if matchers is not None:
            self._matchers[request_id] = matchers
            for i, m in enumerate(matchers):
                self._engine.allow_tokens(request_id, i, m.mask())

    def bad_words_ids(self, words: List[str]) -> List[List[int]]:
        """bad_words as token sequences, as vLLM makes them: each word as
        written at the start of a text and after a space (its leading
        spaces dropped), once each."""
        out: List[List[int]] = []
        for word in words:
            for prefix in ("", " "):
                ids = self.tokenize(prefix + word.lstrip(), add_special=False, parse_special=False)
                if ids and ids not in out:
                    out.append(ids)
        return out

    def structured_matchers(self, params: SamplingParams) -> List[Matcher]:
        """A grammar matcher per completion of a structured request (compiled
        once, copied n times). Safe from any thread: a big schema compiles
        for a fraction of a second, the vocabulary's first use for about one."""
        with self._grammars_lock:
            if self._grammars is None:
                tok = self.get_tokenizer()
                self._grammars = GrammarCompiler(tok, self.n_vocab, tok.end_of_generation)
            grammars = self._grammars
        first = grammars.matcher(params.structured_outputs)
        return [first] + [first.copy() for _ in range(params.n - 1)]

    def prompt_ids(self, prompt: dict):
        """(text or None, token ids) of a normalized prompt."""
        if "prompt_token_ids" in prompt:
            return prompt.get("prompt"), [int(t) for t in prompt["prompt_token_ids"]]
        return prompt["prompt"], self.tokenize(prompt["prompt"])

    @_locked
    def step(self) -> List[RequestOutput]:
        """One forward pass over every running request. Returns the news of
        each request that has some: its new tokens and text since the last
        step (finished=True on its last)."""
        outs = []
        for o in self._engine.step():
            text, ids, with_logprobs = (self._prompts.pop(o.request_id) if o.finished
                                        else self._prompts[o.request_id])
            if o.request_id in self._matchers:
                self._advance_grammar(o)
            outs.append(self._request_output(o, text, ids, with_logprobs))
        return outs

    def _advance_grammar(self, o) -> None:
        """Structured output: each completion's matcher takes its new tokens
        and says which tokens may come next."""
        matchers = self._matchers[o.request_id]
        if o.finished:
            del self._matchers[o.request_id]
            return
        for d in o.outputs:
            if d.token_ids and not d.finish_reason:
                m = matchers[d.index]
                m.consume(list(d.token_ids))
                self._engine.allow_tokens(o.request_id, d.index, m.mask())

    @_locked
    def abort_request(self, request_id: Union[str, Iterable[str]]) -> None:
        """Drops the request(s) at once; their KV blocks go back to the pool."""
        for rid in [request_id] if isinstance(request_id, str) else list(request_id):
            self._engine.abort_request(rid)
            self._prompts.pop(rid, None)
            self._matchers.pop(rid, None)

    @_locked
    def has_unfinished_requests(self) -> bool:
        return self._engine.has_unfinished_requests()

    @_locked
    def get_num_unfinished_requests(self) -> int:
        s = self._engine.stats()
        return s["num_requests_running"] + s["num_requests_waiting"]

    @_locked
    def stats(self) -> dict:
        """Counters (vLLM's names): num_requests_running / _waiting,
        kv_blocks_used / _total, kv_cache_usage_perc, prefix_cache_queries /
        _hits (tokens), prompt_tokens, generation_tokens, num_preemptions."""
        s = dict(self._engine.stats())
        s["kv_cache_usage_perc"] = s["kv_blocks_used"] / s["kv_blocks_total"]
        return s

    # --- the model -------------------------------------------------------------
    @property
    def tokenizer(self):
        """The C++ tokenizer, or None for a file that carries none (where
        get_tokenizer() raises)."""
        return self._tokenizer

    def get_tokenizer(self):
        """The C++ tokenizer (encode / decode bytes); LLM.tokenize / detokenize wrap it."""
        if self._tokenizer is None:
            raise HearthError(f"{self.model_path}: the file carries no tokenizer (no 'tokenizer.ggml.model'); "
                              "pass token ids instead")
        return self._tokenizer

    def tokenize(self, text, add_special: bool = True, parse_special: bool = True) -> List[int]:
        return encode(self.get_tokenizer(), text, add_special, parse_special)

    @property
    def n_ctx(self) -> int:
        return self._engine.n_ctx

    @property
    def n_vocab(self) -> int:
        return self._model.n_vocab

    @property
    def n_threads(self) -> int:
        return self._model.n_threads

    def metadata(self) -> dict:
        """The GGUF metadata, key -> value."""
        return self._model.metadata()

    @property
    def model(self):
        """The core Model: the weights and the forward pass."""
        return self._model

    @property
    def kv_type(self) -> str:
        return self._engine.kv_type

    # --- eval's own sequence (LLM.eval): under the lock, since it shares the
    # KV pool with every request ---------------------------------------------------
    @_locked
    def eval(self, ids: np.ndarray, all_logits: bool = True) -> np.ndarray:
        """Appends ids to eval's sequence; their logits, float32 [len(ids) or 1, n_vocab]."""
        return self._engine.eval(ids, all_logits)

    @_locked
    def reset_eval(self) -> None:
        """Empties eval's sequence; its blocks go back to the pool."""
        self._engine.reset()

    @property
    def eval_n_past(self) -> int:
        """Tokens in eval's sequence."""
        return self._engine.n_past

    def _token_str(self, tid: int) -> str:
        s = self._token_text.get(tid)
        if s is None:
            s = self.get_tokenizer().decode([tid], True).decode("utf-8", errors="replace")
            self._token_text[tid] = s
        return s

    def _request_output(self, o, text, ids, with_logprobs) -> RequestOutput:
        completions = []
        for d in o.outputs:
            logprobs = self._logprob_dicts(d.logprobs) if with_logprobs else None
            completions.append(CompletionOutput(
                index=d.index, text=d.text, token_ids=list(d.token_ids),
                cumulative_logprob=d.cumulative_logprob if (with_logprobs or d.beam_search) else None,
                logprobs=logprobs, finish_reason=d.finish_reason, stop_reason=d.stop_reason,
                beam_score=d.beam_score))
        prompt_logprobs = None
        if o.prompt_logprobs is not None:
            prompt_logprobs = [None] + self._logprob_dicts(o.prompt_logprobs)
        return RequestOutput(request_id=o.request_id, prompt=text, prompt_token_ids=ids, outputs=completions,
                             finished=o.finished, num_cached_tokens=o.num_cached_tokens,
                             prompt_logprobs=prompt_logprobs, metrics=_metrics(o, self._engine.kv_block_bytes))

    def _logprob_dicts(self, rows) -> list:
        """Per token {id: Logprob}: the token itself and its alternatives;
        reversed, so that the token's own entry (its own rank) is the one kept."""
        return [{tid: Logprob(lp, rank, self._token_str(tid)) for tid, lp, rank in reversed(alts)} for alts in rows]


def _metrics(o, block_bytes: int) -> dict:
    m = {"prompt_tokens": o.num_prompt_tokens, "reused_tokens": o.num_cached_tokens,
         "num_preemptions": o.num_preemptions, "arrival_time": o.arrival_time,
         "kv_peak_bytes": o.peak_kv_blocks * block_bytes}
    if o.first_scheduled_time is not None:
        m["queued_seconds"] = o.first_scheduled_time - o.arrival_time
    if o.first_token_time is not None:
        m["prefill_seconds"] = o.first_token_time - o.first_scheduled_time
        m["time_to_first_token"] = o.first_token_time - o.arrival_time
        m["decode_seconds"] = o.last_token_time - o.first_token_time
    if o.finished_time is not None:
        m["total_seconds"] = o.finished_time - o.arrival_time
    return m
