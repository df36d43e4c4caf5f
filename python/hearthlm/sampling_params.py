"""SamplingParams: how to choose the tokens of a completion, with vLLM's names
and defaults, Hugging Face's names where people expect them
(``max_new_tokens``, ``do_sample``, ``num_beams``), and a ValueError naming
the parameter and its allowed range for a bad value."""

from __future__ import annotations

import numbers
from dataclasses import InitVar, dataclass, field
from typing import List, Optional, Union


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass
class SamplingParams:
    """Parameters of one completion.

    The sampling chain runs in Hugging Face's order: repetition_penalty ->
    presence / frequency penalties -> temperature -> top_k -> top_p -> min_p
    -> a draw from a generator seeded with ``seed``. temperature 0 (or
    do_sample=False) is greedy; num_beams > 1 is beam search.
    """

    n: int = 1                          # completions per prompt
    temperature: float = 1.0            # >= 0; 0: greedy
    top_p: float = 1.0                  # (0, 1]
    top_k: int = -1                     # -1 or 0: off
    min_p: float = 0.0                  # [0, 1]
    repetition_penalty: float = 1.0     # > 0 (Hugging Face's: prompt and output tokens); 1: off
    presence_penalty: float = 0.0       # [-2, 2] (OpenAI's: output tokens)
    frequency_penalty: float = 0.0      # [-2, 2]
    max_tokens: Optional[int] = 16      # new tokens at most; None: until the context is full
    stop: Union[str, List[str], None] = None  # stop strings, never part of the text
    stop_token_ids: Optional[List[int]] = None
    ignore_eos: bool = False
    seed: Optional[int] = None
    logprobs: Optional[int] = None      # alternatives per token to report (0: just the chosen one)
    skip_special_tokens: bool = True    # control tokens are not shown in the text
    num_beams: int = 1                  # beam search when > 1 (deterministic)
    length_penalty: float = 1.0         # beam scores: sum of log-probs / length ** length_penalty
    early_stopping: Union[bool, str] = False  # as Hugging Face: True, False or "never"
    # Hugging Face's spellings
    max_new_tokens: InitVar[Optional[int]] = None
    do_sample: InitVar[Optional[bool]] = None
    _do_sample: Optional[bool] = field(default=None, init=False, repr=False)

    def __post_init__(self, max_new_tokens, do_sample):
        if max_new_tokens is not None:
            self.max_tokens = max_new_tokens
        if do_sample is not None:
            if not isinstance(do_sample, bool):
                raise ValueError(f"do_sample must be True or False, got {do_sample!r}")
            self._do_sample = do_sample
            if not do_sample:
                self.temperature = 0.0
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = list(self.stop or [])
        self.stop_token_ids = list(self.stop_token_ids or [])
        self._check()

    def _check(self):
        def bad(name, rule):
            raise ValueError(f"{name} must be {rule}, got {getattr(self, name)!r}")

        if not _is_int(self.n) or self.n < 1:
            bad("n", "an integer >= 1")
        if not _is_num(self.temperature) or not self.temperature >= 0 or self.temperature == float("inf"):
            bad("temperature", ">= 0 (0 is greedy)")
        if self._do_sample and self.temperature == 0:
            raise ValueError("do_sample=True needs temperature > 0, got temperature=0")
        if not _is_num(self.top_p) or not 0 < self.top_p <= 1:
            bad("top_p", "in (0, 1]")
        if not _is_int(self.top_k) or self.top_k < -1:
            bad("top_k", "an integer >= -1 (-1 or 0 is off)")
        if not _is_num(self.min_p) or not 0 <= self.min_p <= 1:
            bad("min_p", "in [0, 1]")
        if not _is_num(self.repetition_penalty) or not self.repetition_penalty > 0 \
                or self.repetition_penalty == float("inf"):
            bad("repetition_penalty", "> 0 (1 is off)")
        for name in ("presence_penalty", "frequency_penalty"):
            v = getattr(self, name)
            if not _is_num(v) or not -2 <= v <= 2:
                bad(name, "in [-2, 2]")
        if self.max_tokens is not None and (not _is_int(self.max_tokens) or self.max_tokens < 1):
            bad("max_tokens", "an integer >= 1 or None (max_new_tokens likewise)")
        if not all(isinstance(s, str) for s in self.stop):
            bad("stop", "a string or a list of strings")
        if not all(_is_int(t) and t >= 0 for t in self.stop_token_ids):
            bad("stop_token_ids", "a list of token ids")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2 ** 64):
            bad("seed", "an integer in [0, 2**64) or None")
        if self.logprobs is not None and (not _is_int(self.logprobs) or self.logprobs < 0):
            bad("logprobs", "an integer >= 0 or None")
        if not _is_int(self.num_beams) or self.num_beams < 1:
            bad("num_beams", "an integer >= 1")
        if not _is_num(self.length_penalty):
            bad("length_penalty", "a number")
        if self.early_stopping not in (True, False, "never"):
            bad("early_stopping", "True, False or 'never'")
        if self.num_beams > 1:
            if self._do_sample:
                raise ValueError("num_beams > 1 with do_sample=True (beam sampling) is not supported; "
                                 "beam search is deterministic (do_sample=False)")
            if self.n > self.num_beams:
                raise ValueError(f"n must be <= num_beams for beam search, got n={self.n}, num_beams={self.num_beams}")
            if self.max_tokens is None:
                raise ValueError("beam search needs max_tokens (or max_new_tokens)")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def core_sampling(self, seed: int) -> dict:
        """The parameters of the C++ sampler."""
        return dict(temperature=float(self.temperature), top_k=max(int(self.top_k), 0), top_p=float(self.top_p),
                    min_p=float(self.min_p), repetition_penalty=float(self.repetition_penalty),
                    presence_penalty=float(self.presence_penalty), frequency_penalty=float(self.frequency_penalty),
                    seed=int(seed))
