"""LLM: the offline Python API (vLLM's shape) over the engine: generate()
submits every prompt at once and steps the engine until all are done; chat()
renders the model's own chat template; eval() is the low-level surface."""

from __future__ import annotations

import itertools
import os
import secrets
import sys
from typing import Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np

from . import _core
from .engine import LLMEngine, encode, normalize_prompts
from .errors import HearthError
from .outputs import RequestOutput
from .sampling_params import SamplingParams
from .step_router import StepRouter

_llm_ids = itertools.count()


class LLM:
    """A GGUF model loaded for inference.

    Args:
        model: a GGUF file (as written by hearth-convert or llama.cpp); None:
            the default model (SmolLM2-135M-Instruct, fetched once).
        n_threads: worker threads (default: every CPU this process may use).
        n_ctx: the longest a sequence may grow, prompt and output (default:
            the model's context, at most 4096).
        kv_type: element type of the KV cache, "f16" (default, as llama.cpp),
            "f32" (exact parity with Hugging Face) or "q8_0" (8-bit, 17/32 of
            f16's memory, as llama.cpp's q8_0 cache).
        activations: "q8" (default, fast, as llama.cpp) or "q16" (nearly
            exact): how matmuls with quantized weights round their inputs.
        vocab_only: load the tokenizer alone (tokenize / detokenize work;
            there are no weights to evaluate), e.g. a `--vocab-only` file.
        seed: where requests without their own SamplingParams.seed take
            their seeds from; the same seed gives the same texts (None: a
            fresh random seed per request).
        max_num_seqs, max_num_batched_tokens, kv_cache_tokens,
        enable_prefix_caching: the engine's (see LLMEngine).
    """

    def __init__(self, model: Union[str, os.PathLike, None] = None, n_threads: Optional[int] = None,
                 n_ctx: Optional[int] = None, kv_type: str = "f16", vocab_only: bool = False,
                 seed: Optional[int] = None, *, activations: str = "q8", max_num_seqs: int = 16,
                 max_num_batched_tokens: int = 512, kv_cache_tokens: Optional[int] = None,
                 enable_prefix_caching: bool = True, model_path=None):
        if model is None and model_path is not None:
            model = model_path  # hearth's earlier keyword
        if model is None:
            from .model_cache import default_model_path
            model = default_model_path()
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.model_path = os.fspath(model)
        self._metadata = None
        self._seeds = None if seed is None else _SeedSequence(seed)
        self._id_prefix = f"llm{next(_llm_ids)}-"
        self._request_numbers = itertools.count()
        if vocab_only:
            self.llm_engine = None
            self._router = None
            self._tokenizer = _core.Tokenizer.load(self.model_path)
        else:
            self.llm_engine = LLMEngine(self.model_path, n_threads=n_threads, n_ctx=n_ctx, kv_type=kv_type,
                                        activations=activations, kv_cache_tokens=kv_cache_tokens, max_num_seqs=max_num_seqs,
                                        max_num_batched_tokens=max_num_batched_tokens,
                                        enable_prefix_caching=enable_prefix_caching)
            self._tokenizer = self.llm_engine.tokenizer
            self._router = StepRouter(self.llm_engine)

    @classmethod
    def from_pretrained(cls, repo_id: str, filename: Optional[str] = None, *, quant: Optional[str] = None,
                        hub: Optional[str] = None, **kwargs) -> "LLM":
        """An LLM on a GGUF file of a hub repo, fetched once into hearth's cache
        (llama-cpp-python's ``Llama.from_pretrained``): ``filename`` is a name
        or a glob ("*Q4_K_M.gguf"), else ``quant`` picks it as llama.cpp's -hf
        does (Q4_K_M by default). ``hub``: "huggingface" (default) or
        "modelscope" ($HEARTH_USE_MODELSCOPE=True too). Other arguments are
        LLM's."""
        from .hub import gguf_file

        return cls(gguf_file(repo_id, filename=filename, quant=quant, hub=hub), **kwargs)

    # --- facts about the model -------------------------------------------------
    @property
    def vocab_only(self) -> bool:
        return self.llm_engine is None

    @property
    def n_vocab(self) -> int:
        return self._tokenizer.n_tokens if self.llm_engine is None else self._weights().n_vocab

    @property
    def n_ctx(self) -> int:
        return self._engine().n_ctx

    @property
    def n_past(self) -> int:
        """Tokens eval() has put in its sequence of the KV cache."""
        return self._engine().eval_n_past

    @property
    def n_threads(self) -> int:
        return self._weights().n_threads

    @property
    def kv_type(self) -> str:
        return self._engine().kv_type

    def _engine(self):
        """The LLMEngine (an error with vocab_only=True)."""
        if self.llm_engine is None:
            raise HearthError(f"{self.model_path}: loaded with vocab_only=True, so there are no weights to run")
        return self.llm_engine

    def _weights(self):
        """The core Model (weights)."""
        return self._engine().model

    def get_tokenizer(self):
        """The C++ tokenizer (encode / decode bytes)."""
        if self._tokenizer is None:
            raise HearthError(f"{self.model_path}: the file carries no tokenizer (no 'tokenizer.ggml.model'); "
                              "pass token ids instead")
        return self._tokenizer

    @property
    def metadata(self) -> dict:
        """The GGUF metadata, key -> value (arrays as lists)."""
        if self._metadata is None:
            self._metadata = (_core.read_metadata(self.model_path) if self.llm_engine is None
                              else self._weights().metadata())
        return self._metadata

    @property
    def tensors(self) -> list:
        """(name, type, shape) of every tensor in the file; shape is GGUF's (inner dimension first)."""
        return self._weights().tensors()

    # --- evaluation ------------------------------------------------------------
    def eval(self, token_ids: Sequence[int] | np.ndarray, all_logits: bool = True) -> np.ndarray:
        """Appends token_ids to eval's own sequence in the KV cache and
        returns their logits: float32 [len(token_ids), n_vocab] (or
        [1, n_vocab], the last token's, when all_logits is False)."""
        ids = np.asarray(token_ids)
        if ids.ndim != 1 or ids.size == 0:
            raise ValueError("token_ids must be a non-empty 1-D sequence of token ids")
        if not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"token_ids must be integers, got dtype {ids.dtype}")
        return self._engine().eval(ids, all_logits)

    def reset(self) -> None:
        """Empties eval's sequence of the KV cache."""
        self._engine().reset_eval()

    def generate_greedy(self, prompt_ids: Iterable[int], max_tokens: int = 16, stop_at_eos: bool = True) -> list:
        """Up to max_tokens greedily chosen token ids after prompt_ids (ending
        at an end-of-generation token when stop_at_eos)."""
        ids = [int(t) for t in prompt_ids]
        if not ids:
            raise ValueError("prompt_ids must be a non-empty sequence of token ids")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, (int, np.integer)) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an integer >= 0, got {max_tokens!r}")
        if max_tokens == 0:
            return []
        params = SamplingParams(temperature=0.0, max_tokens=int(max_tokens), ignore_eos=not stop_at_eos)
        return self.generate([ids], params, use_tqdm=False)[0].token_ids

    # --- generation ------------------------------------------------------------
    def generate(self, prompts, sampling_params: Union[SamplingParams, Sequence[SamplingParams], None] = None, *,
                 use_tqdm: bool = True, stream: bool = False):
        """Completions of prompts (a str, a list of str, a list of token ids,
        or a list of those), as vLLM's LLM.generate: a list of RequestOutput,
        one per prompt (``out.outputs[i].text``; ``out.text`` for the first).
        All prompts run together in the engine (continuous batching);
        sampling_params may be one for all or a list, one per prompt.
        use_tqdm: a progress bar (on a terminal).

        stream=True (one prompt, n=1): an iterator of text deltas instead,
        each whole characters; they concatenate to the completion's text.
        """
        reqs = normalize_prompts(prompts)
        params = _params_per_prompt(sampling_params, len(reqs))
        if stream:
            if len(reqs) != 1:
                raise ValueError("stream=True takes one prompt")
            if params[0].n != 1 or params[0].num_beams != 1:
                raise ValueError("stream=True generates one completion: n and num_beams must be 1")
            return self._stream(reqs[0], params[0])
        return self._run(reqs, params, use_tqdm)

    def _next_id(self) -> str:
        return self._id_prefix + str(next(self._request_numbers))

    def _seed(self) -> Optional[int]:
        return self._seeds.next() if self._seeds is not None else secrets.randbits(64)

    def _add_all(self, reqs, params) -> List[str]:
        """Queues every request, or none (the ones queued are aborted when one
        fails). Each is watched before it is queued: a step on another thread
        may produce its first output at once."""
        engine = self.llm_engine
        if engine is None:
            self._weights()
        ids = []
        try:
            for prompt, p in zip(reqs, params):
                rid = self._next_id()
                ids.append(rid)
                self._router.watch([rid])
                engine.add_request(rid, prompt, p, seed=self._seed())
        except BaseException:
            engine.abort_request(ids)
            self._router.forget(ids)
            raise
        return ids

    def _run(self, reqs, params, use_tqdm) -> List[RequestOutput]:
        engine = self.llm_engine
        order = self._add_all(reqs, params)
        router = self._router
        done = {}
        partial = {rid: None for rid in order}
        bar = None
        try:
            bar = _progress(len(order), use_tqdm)
            while len(done) < len(order):
                # a step's outputs of other calls' requests and open streams are kept for them
                news = router.take_or_step([rid for rid in order if rid not in done])
                for out in news:
                    merged = _merge(partial[out.request_id], out)
                    partial[out.request_id] = merged
                    if out.finished:
                        done[out.request_id] = merged
                        if bar is not None:
                            bar.update(1)
        except BaseException:
            engine.abort_request([rid for rid in order if rid not in done])  # their blocks go back at once
            raise
        finally:
            router.forget(order)
            if bar is not None:
                bar.close()
        return [done[rid] for rid in order]

    def _stream(self, prompt: dict, params: SamplingParams) -> Iterator[str]:
        (rid,) = self._add_all([prompt], [params])  # a bad prompt fails here, not at the first next()
        return _TextStream(self._router, rid)

    def chat(self, messages, sampling_params: Union[SamplingParams, Sequence[SamplingParams], None] = None, *,
             use_tqdm: bool = True, stream: bool = False, add_generation_prompt: bool = True,
             continue_final_message: bool = False, chat_template: Optional[str] = None, tools=None,
             chat_template_kwargs: Optional[dict] = None, **template_kwargs):
        """The model's answers to a conversation ([{"role": ..., "content": ...},
        ...]) or a list of conversations, rendered with its own chat template
        as transformers' apply_chat_template(add_generation_prompt=True) does.
        Returns a list of RequestOutput, one per conversation, as vLLM's
        LLM.chat (stream=True, one conversation: an iterator of text deltas).
        A conversation that continues an earlier one reuses its KV blocks
        through the prefix cache. More template variables (enable_thinking=
        False, ...) come as chat_template_kwargs (vLLM's) or as keywords."""
        _refuse_misspelt_parameters(template_kwargs)
        template_kwargs = {**template_kwargs, **(chat_template_kwargs or {})}
        # as in vLLM, chat_template_kwargs win over chat()'s own template arguments
        add_generation_prompt = template_kwargs.pop("add_generation_prompt", add_generation_prompt)
        continue_final_message = template_kwargs.pop("continue_final_message", continue_final_message)
        chat_template = template_kwargs.pop("chat_template", chat_template)
        tools = template_kwargs.pop("tools", tools)
        if isinstance(messages, dict) or isinstance(messages, (str, bytes)) or messages is None:
            raise HearthError("messages must be a list of messages ({'role': ..., 'content': ...}) "
                              f"or a list of such lists, got {type(messages).__name__}", param="messages")
        conversations = [messages] if messages and isinstance(messages[0], dict) else list(messages)
        prompts = []
        for conv in conversations:
            text = self.render_chat(conv, add_generation_prompt=add_generation_prompt, chat_template=chat_template,
                                    continue_final_message=continue_final_message, tools=tools, **template_kwargs)
            # the template writes BOS if it wants one
            prompts.append({"prompt": text, "prompt_token_ids": self.tokenize(text, add_special=False)})
        if stream:
            if len(prompts) != 1:
                raise ValueError("stream=True takes one conversation")
            return self.generate(prompts, sampling_params, stream=True)
        return self.generate(prompts, sampling_params, use_tqdm=use_tqdm)

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
        return encode(self.get_tokenizer(), text, add_special, parse_special)

    def detokenize_bytes(self, token_ids: Iterable[int], special: bool = False) -> bytes:
        """The bytes token_ids stand for (a character may be cut at either end).
        special: show control tokens (``<|im_end|>``) as their text."""
        return self.get_tokenizer().decode(_ids_list(token_ids), bool(special))

    def detokenize(self, token_ids: Iterable[int], special: bool = False) -> str:
        """The text of token_ids; bytes that are not valid UTF-8 become U+FFFD,
        as bytes.decode(errors="replace")."""
        return self.detokenize_bytes(token_ids, special).decode("utf-8", errors="replace")

    def stream_decoder(self, special: bool = False) -> "_core.StreamDecoder":
        """A decoder fed one token at a time (``.push(id) -> str``, then
        ``.finish() -> str``) that holds back bytes until a character is whole."""
        return _core.StreamDecoder(self.get_tokenizer(), bool(special))

    def __repr__(self) -> str:
        if self.llm_engine is None:
            return f"LLM({self.model_path!r}, vocab_only=True, n_vocab={self.n_vocab})"
        return (f"LLM({self.model_path!r}, arch={self._weights().architecture}, n_ctx={self.n_ctx}, "
                f"n_threads={self.n_threads}, kv_type={self.kv_type!r})")


class _TextStream:
    """The text deltas of one request as the engine steps. Closing it early
    (or dropping it) aborts the request, so its KV blocks go back at once.
    Several streams (and generate() calls) may be open on one LLM: the
    router keeps each one's outputs for it (LLM._add_all watches the request
    before it is queued)."""

    def __init__(self, router: StepRouter, request_id: str):
        self._router, self._id, self._finished = router, request_id, False
        self._pending: List[str] = []

    def __iter__(self):
        return self

    def __next__(self) -> str:
        while not self._pending:
            if self._finished:
                raise StopIteration
            try:
                for out in self._router.take_or_step([self._id]):
                    if out.finished:
                        self._finished = True
                        self._router.forget([self._id])
                    if out.outputs[0].text:
                        self._pending.append(out.outputs[0].text)
            except BaseException:
                self.close()
                raise
        return self._pending.pop(0)

    def close(self) -> None:
        if not self._finished:
            self._finished = True
            self._router.forget([self._id])
            self._router.engine.abort_request(self._id)

    def __del__(self):
        try:
            self.close()
        except Exception:  # the engine may be gone at interpreter exit
            pass


_CHAT_PARAMETERS = ("sampling_params", "use_tqdm", "stream", "add_generation_prompt", "continue_final_message",
                    "chat_template", "tools", "chat_template_kwargs")


def _refuse_misspelt_parameters(template_kwargs: dict) -> None:
    """chat() passes unknown keywords to the template, so that a misspelt
    parameter (sampling_param=...) would be silently ignored: refuse the
    ones that look like chat()'s own."""
    import difflib

    for name in template_kwargs:
        close = difflib.get_close_matches(name, _CHAT_PARAMETERS, n=1, cutoff=0.8)
        if close:
            raise TypeError(f"chat() got an unexpected keyword argument {name!r}; did you mean {close[0]!r}? "
                            "(template variables go in chat_template_kwargs)")


def _params_per_prompt(sampling_params, n: int) -> List[SamplingParams]:
    if sampling_params is None:
        return [SamplingParams()] * n
    if isinstance(sampling_params, SamplingParams):
        return [sampling_params] * n
    params = list(sampling_params)
    if len(params) != n or not all(isinstance(p, SamplingParams) for p in params):
        raise ValueError(f"sampling_params must be a SamplingParams or a list of {n} of them (one per prompt)")
    return params


def _merge(acc: Optional[RequestOutput], new: RequestOutput) -> RequestOutput:
    """A request's output so far, with a step's news appended."""
    if acc is None:
        return new
    by_index = {c.index: c for c in acc.outputs}
    for c in new.outputs:
        old = by_index.get(c.index)
        if old is None:
            by_index[c.index] = c
            continue
        old.text += c.text
        old.token_ids += c.token_ids
        if c.logprobs is not None:
            old.logprobs = (old.logprobs or []) + c.logprobs
        old.cumulative_logprob = c.cumulative_logprob
        old.finish_reason, old.stop_reason, old.beam_score = c.finish_reason, c.stop_reason, c.beam_score
    acc.outputs = [by_index[i] for i in sorted(by_index)]
    acc.finished, acc.metrics, acc.num_cached_tokens = new.finished, new.metrics, new.num_cached_tokens
    if new.prompt_logprobs is not None:
        acc.prompt_logprobs = new.prompt_logprobs
    if acc.finished:
        generated = sum(len(c.token_ids) for c in acc.outputs)
        m = acc.metrics
        m["generated_tokens"] = generated
        if m.get("decode_seconds"):
            m["decode_tokens_per_s"] = max(generated - len(acc.outputs), 0) / m["decode_seconds"]
        if m.get("prefill_seconds"):
            m["prefill_tokens_per_s"] = (m["prompt_tokens"] - m["reused_tokens"]) / m["prefill_seconds"]
    return acc


def _progress(total: int, use_tqdm: bool):
    if not use_tqdm or total < 2 or not sys.stderr.isatty():
        return None
    from tqdm import tqdm
    return tqdm(total=total, desc="Processed prompts", unit="prompt", dynamic_ncols=True)


def _ids_list(token_ids) -> list:
    ids = np.asarray(list(token_ids) if not isinstance(token_ids, np.ndarray) else token_ids)
    if ids.size and (ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError("token_ids must be a 1-D sequence of integers")
    return [int(i) for i in ids.reshape(-1)]


class _SeedSequence:
    """Per-request seeds from LLM(seed=...): the same LLM seed gives the same
    sequence of requests the same texts."""

    def __init__(self, seed: int):
        self._n = itertools.count()
        self._seed = int(seed)

    def next(self) -> int:
        # splitmix64 of (seed, request number): well spread, reproducible
        z = (self._seed + 0x9E3779B97F4A7C15 * (next(self._n) + 1)) & (2 ** 64 - 1)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2 ** 64 - 1)
        return z ^ (z >> 31)
