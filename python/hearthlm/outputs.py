"""The results of LLM.generate and LLMEngine.step, shaped as vLLM's: a
RequestOutput per prompt holding a CompletionOutput per completion, with
aliases for the first one (``out.text``, ``out.token_ids``,
``out.finish_reason``), and log-probabilities as ``Logprob`` objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union


@dataclass
class Logprob:
    """One token's log-probability under the model (vLLM's Logprob)."""
    logprob: float
    rank: Optional[int] = None          # 1 for the most likely token of its row
    decoded_token: Optional[str] = None  # the token's text


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: List[int]
    cumulative_logprob: Optional[float] = None  # sum of the tokens' log-probabilities (with logprobs, or beams)
    logprobs: Optional[List[Dict[int, Logprob]]] = None  # per token: the chosen one and the top alternatives
    finish_reason: Optional[str] = None  # "stop" (end token, stop string or stop token) or "length"
    stop_reason: Union[int, str, None] = None  # the stop string or token id that ended it
    beam_score: Optional[float] = None  # beam search: sum of log-probs / length ** length_penalty

    def finished(self) -> bool:
        return self.finish_reason is not None


@dataclass
class RequestOutput:
    request_id: str
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    finished: bool = True
    num_cached_tokens: int = 0  # prompt tokens whose KV came from the prefix cache
    # with SamplingParams(prompt_logprobs=k): per prompt token, None for the
    # first, then its Logprob and the k most likely alternatives (vLLM's shape)
    prompt_logprobs: Optional[List[Optional[Dict[int, Logprob]]]] = None
    # prompt_tokens, generated_tokens, reused_tokens (= num_cached_tokens),
    # seconds (queued, prefill, decode, total) and tokens/s
    metrics: Dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.outputs[0].text

    @property
    def token_ids(self) -> List[int]:
        return self.outputs[0].token_ids

    @property
    def finish_reason(self) -> Optional[str]:
        return self.outputs[0].finish_reason
