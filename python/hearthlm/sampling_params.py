"""SamplingParams: how to choose the tokens of a completion, with vLLM's names
and defaults, Hugging Face's names where people expect them
(``max_new_tokens``, ``do_sample``, ``num_beams``). The values cross into C++
as one bound struct (hearthlm._core.RequestParams), and C++ checks them: a
bad value raises a HearthError (a ValueError) naming the parameter and its
range."""

from __future__ import annotations

import numbers
from dataclasses import InitVar, dataclass, field
from typing import Dict, List, Mapping, Optional, Union

from .errors import HearthError
from .structured import StructuredOutputsParams, as_params


INT32_MAX = 2 ** 31 - 1
INT64_MAX = 2 ** 63 - 1
MAX_LOGPROBS = 20  # vLLM's default max_logprobs: alternatives per token at most


def _int(name: str, v, none_as=None, at_most: int = INT32_MAX) -> int:
    """v as an int that fits its C++ field (int32 unless at_most says more):
    a bigger one is a HearthError naming the parameter, not pybind11's
    TypeError (a server would answer 500 to 'max_tokens': 1e30)."""
    if v is None and none_as is not None:
        return none_as
    if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise HearthError(f"{name} must be an integer, got {v!r}", param=name)
    if v > at_most:
        raise HearthError(f"{name} must be at most {at_most}, got {v}", param=name)
    if v < -at_most - 1:
        raise HearthError(f"{name} must be at least {-at_most - 1}, got {v}", param=name)
    return int(v)


def _num(name: str, v) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        raise HearthError(f"{name} must be a number, got {v!r}", param=name)
    return float(v)


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a lone surrogate
        return False


def _flag(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise HearthError(f"{name} must be True or False, got {v!r}", param=name)
    return v


@dataclass
class SamplingParams:
    """Parameters of one request.

    The sampling chain runs vLLM's restrictions first (allowed_token_ids,
    logit_bias), then Hugging Face's order: repetition_penalty -> presence /
    frequency penalties -> temperature -> top_k -> top_p -> min_p -> a draw
    from a generator seeded with ``seed`` (each completion its own). Reported
    logprobs are the model's own, before any of it (vLLM's default).
    temperature 0 (or do_sample=False) is greedy; num_beams > 1 is beam
    search.
    """

    n: int = 1                          # completions per prompt (forks of the prompt's KV blocks)
    temperature: float = 1.0            # >= 0; 0: greedy
    top_p: float = 1.0                  # (0, 1]
    top_k: int = -1                     # -1 or 0: off
    min_p: float = 0.0                  # [0, 1]
    repetition_penalty: float = 1.0     # > 0 (Hugging Face's: prompt and output tokens); 1: off
    presence_penalty: float = 0.0       # [-2, 2] (OpenAI's: output tokens)
    frequency_penalty: float = 0.0      # [-2, 2]
    logit_bias: Optional[Dict[int, float]] = None  # token id -> added to its logit (OpenAI's, in logit units)
    allowed_token_ids: Optional[List[int]] = None  # only these tokens can be drawn (vLLM's)
    bad_words: Optional[List[str]] = None  # words the answer never contains (vLLM's; with and without a leading space)
    max_tokens: Optional[int] = 16      # new tokens at most; None: until the context is full
    min_tokens: int = 0                 # no end token or stop_token_ids entry before this many (stop strings still apply)
    stop: Union[str, List[str], None] = None  # stop strings, not part of the text
    stop_token_ids: Optional[List[int]] = None
    include_stop_str_in_output: bool = False  # the stop string ends the text instead of being cut
    ignore_eos: bool = False
    seed: Optional[int] = None
    logprobs: Optional[int] = None      # alternatives per token to report (0: just the chosen one)
    prompt_logprobs: Optional[int] = None  # the same for the prompt's tokens (RequestOutput.prompt_logprobs)
    skip_special_tokens: bool = True    # control tokens are not shown in the text
    num_beams: int = 1                  # beam search when > 1 (deterministic)
    length_penalty: float = 1.0         # beam scores: sum of log-probs / length ** length_penalty
    early_stopping: Union[bool, str] = False  # as Hugging Face: True, False or "never"
    # the answer follows a JSON schema, a regex, ... (hearthlm.StructuredOutputsParams or a dict of its fields)
    structured_outputs: Optional[StructuredOutputsParams] = None
    # Hugging Face's spellings
    max_new_tokens: InitVar[Optional[int]] = None
    do_sample: InitVar[Optional[bool]] = None
    _do_sample: Optional[bool] = field(default=None, init=False, repr=False)

    def __post_init__(self, max_new_tokens, do_sample):
        if max_new_tokens is not None:
            self.max_tokens = max_new_tokens
        if do_sample is not None:
            self._do_sample = _flag("do_sample", do_sample)
            if not do_sample:
                self.temperature = 0.0
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if self.stop is not None and not isinstance(self.stop, (list, tuple)):
            raise HearthError(f"stop must be a string or a list of strings, got {self.stop!r}", param="stop")
        self.stop = list(self.stop or [])
        for x in self.stop:
            if isinstance(x, str) and not _utf8(x):
                raise HearthError(f"stop must be text that UTF-8 can encode, got {x!r}", param="stop")
        if self.stop_token_ids is not None and not isinstance(self.stop_token_ids, (list, tuple)):
            raise HearthError(f"stop_token_ids must be a list of token ids, got {self.stop_token_ids!r}",
                              param="stop_token_ids")
        self.stop_token_ids = list(self.stop_token_ids or [])
        if self.logit_bias is not None:
            if not isinstance(self.logit_bias, Mapping):
                raise HearthError(f"logit_bias must be a dict of token id -> bias, got {self.logit_bias!r}",
                                  param="logit_bias")
            self.logit_bias = dict(self.logit_bias)
        if self.allowed_token_ids is not None:
            if not isinstance(self.allowed_token_ids, (list, tuple)):
                raise HearthError(f"allowed_token_ids must be a list of token ids, got {self.allowed_token_ids!r}",
                                  param="allowed_token_ids")
            if not self.allowed_token_ids:
                raise HearthError("allowed_token_ids must not be empty (None allows every token)",
                                  param="allowed_token_ids")
            self.allowed_token_ids = list(self.allowed_token_ids)
        if self.bad_words is not None:
            if not isinstance(self.bad_words, (list, tuple)) or not all(isinstance(w, str) for w in self.bad_words):
                raise HearthError(f"bad_words must be a list of strings, got {self.bad_words!r}", param="bad_words")
            if not all(w.strip() and _utf8(w) for w in self.bad_words):
                raise HearthError("bad_words must be words: no empty or blank strings, no lone surrogates",
                                  param="bad_words")
            self.bad_words = list(self.bad_words)
        self.structured_outputs = as_params(self.structured_outputs)
        self.to_core()  # checked now, so that a bad value fails where it is written

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_core(self, seed: Optional[int] = None):
        """The C++ struct (hearthlm._core.RequestParams), checked; seed (if
        given) stands in for a request without its own."""
        from . import _core

        if self._do_sample and self.temperature == 0:
            raise HearthError("do_sample=True needs temperature > 0, got temperature=0", param="temperature")
        if self.num_beams > 1 and self._do_sample:
            raise HearthError("num_beams > 1 with do_sample=True (beam sampling) is not supported; "
                              "beam search is deterministic (do_sample=False)", param="num_beams")
        p = _core.RequestParams()
        s = p.sampling
        s.temperature = _num("temperature", self.temperature)
        top_k = _int("top_k", self.top_k)
        s.top_k = 0 if top_k == -1 else top_k  # vLLM's -1 is off, as 0
        s.top_p = _num("top_p", self.top_p)
        s.min_p = _num("min_p", self.min_p)
        s.repetition_penalty = _num("repetition_penalty", self.repetition_penalty)
        s.presence_penalty = _num("presence_penalty", self.presence_penalty)
        s.frequency_penalty = _num("frequency_penalty", self.frequency_penalty)
        s.allowed_token_ids = [_int("allowed_token_ids", t) for t in self.allowed_token_ids or []]
        s.logit_bias = {_int("logit_bias", t): _num("logit_bias", b) for t, b in (self.logit_bias or {}).items()}
        chosen_seed = self.seed if self.seed is not None else seed
        if chosen_seed is not None:
            chosen_seed = _int("seed", chosen_seed, at_most=2 ** 64 - 1)
            if not 0 <= chosen_seed < 2 ** 64:
                raise HearthError(f"seed must be an integer in [0, 2**64) or None, got {chosen_seed!r}", param="seed")
            s.seed = chosen_seed
            p.has_seed = True
        g = p.generation
        g.n = _int("n", self.n)
        g.max_tokens = _int("max_tokens", self.max_tokens, none_as=-1, at_most=INT64_MAX)
        g.min_tokens = _int("min_tokens", self.min_tokens, at_most=INT64_MAX)
        if self.max_tokens is not None and g.max_tokens < 1:
            raise HearthError(f"max_tokens must be an integer >= 1 or None (max_new_tokens likewise), got {self.max_tokens!r}",
                              param="max_tokens")
        if not all(isinstance(x, str) for x in self.stop):
            raise HearthError(f"stop must be a string or a list of strings, got {self.stop!r}", param="stop")
        if any(x == "" for x in self.stop):
            raise HearthError("stop cannot contain an empty string", param="stop")  # as vLLM
        g.stop = self.stop
        g.include_stop_str_in_output = _flag("include_stop_str_in_output", self.include_stop_str_in_output)
        g.stop_token_ids = [_int("stop_token_ids", t) for t in self.stop_token_ids]
        g.ignore_eos = _flag("ignore_eos", self.ignore_eos)
        g.logprobs = _int("logprobs", self.logprobs, none_as=-1)
        if self.logprobs is not None and not 0 <= g.logprobs <= MAX_LOGPROBS:
            raise HearthError(f"logprobs must be an integer in [0, {MAX_LOGPROBS}] or None, got {self.logprobs!r}",
                              param="logprobs")
        g.prompt_logprobs = _int("prompt_logprobs", self.prompt_logprobs, none_as=-1)
        if self.prompt_logprobs is not None and not 0 <= g.prompt_logprobs <= MAX_LOGPROBS:
            raise HearthError(f"prompt_logprobs must be an integer in [0, {MAX_LOGPROBS}] or None, "
                              f"got {self.prompt_logprobs!r}", param="prompt_logprobs")
        g.skip_special_tokens = _flag("skip_special_tokens", self.skip_special_tokens)
        g.constrained = self.structured_outputs is not None
        b = p.beam
        b.num_beams = _int("num_beams", self.num_beams)
        b.length_penalty = _num("length_penalty", self.length_penalty)
        if self.early_stopping not in (True, False, "never"):
            raise HearthError(f"early_stopping must be True, False or 'never', got {self.early_stopping!r}",
                              param="early_stopping")
        b.early_stopping = str(self.early_stopping).lower()
        p.check()  # ranges, and how the parts combine: C++ names the parameter
        return p
