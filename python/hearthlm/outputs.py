"""The results of LLM.generate, shaped as vLLM's: a RequestOutput per prompt
holding a CompletionOutput per completion, with aliases for the first one
(``out.text``, ``out.token_ids``, ``out.finish_reason``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Union


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: List[int]
    cumulative_logprob: Optional[float] = None  # sum of the tokens' log-probabilities (beam search: its score)
    logprobs: Optional[List[Dict[int, float]]] = None  # per token: {id: log p} for it and the alternatives
    finish_reason: Optional[str] = None  # "stop" (end token, stop string or stop token) or "length"
    stop_reason: Union[int, str, None] = None  # the stop string or token id that ended it


@dataclass
class RequestOutput:
    request_id: str
    prompt: Optional[str]
    prompt_token_ids: List[int]
    outputs: List[CompletionOutput]
    finished: bool = True
    # timing: prompt_tokens, reused_tokens (held by the cache from an earlier
    # request), generated_tokens, prefill_seconds, decode_seconds, and tokens/s
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
