"""Pieces of OpenAI's response shapes that chat and completions share:
error bodies, usage, Server-Sent Events, and a request's completions as they
accumulate from the engine's step-by-step outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..outputs import CompletionOutput, Logprob, RequestOutput


def error_body(message: str, type_: str, param: Optional[str] = None, code=None) -> dict:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens}}


def sse(obj) -> str:
    """One Server-Sent Event carrying obj as JSON ("data: [DONE]" for the string)."""
    return f"data: {obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)}\n\n"


def chunk_event(kind: str, request_id: str, created: int, model: str, choices: List[dict], include_usage: bool,
                with_usage: Optional[dict] = None) -> str:
    """One streamed chunk ("chat.completion.chunk" or "text_completion") as
    an event; with include_usage every chunk carries "usage" (null until the last)."""
    body = {"id": request_id, "object": kind, "created": created, "model": model, "choices": choices}
    if include_usage:
        body["usage"] = with_usage
    return sse(body)


def top_entries(alternatives: Dict[int, Logprob], k: int) -> List[tuple]:
    """The k most likely (token id, Logprob) of one position, by rank."""
    ranked = sorted(alternatives.items(), key=lambda kv: (kv[1].rank or 0))
    return [(tid, lp) for tid, lp in ranked if lp.rank is not None and lp.rank <= k][:k]


@dataclass
class Choice:
    """One completion of a request, gathered from the engine's deltas."""
    index: int
    text: str = ""
    token_ids: List[int] = field(default_factory=list)
    logprobs: List[Dict[int, Logprob]] = field(default_factory=list)
    finish_reason: Optional[str] = None
    stop_reason: object = None

    def add(self, c: CompletionOutput) -> None:
        self.text += c.text
        self.token_ids += c.token_ids
        if c.logprobs:
            self.logprobs += c.logprobs
        if c.finish_reason is not None:
            self.finish_reason, self.stop_reason = c.finish_reason, c.stop_reason


class Gathered:
    """A request's choices and counts so far."""

    def __init__(self, first_index: int = 0):
        self.first_index = first_index
        self.choices: Dict[int, Choice] = {}
        self.prompt_tokens = 0
        self.cached_tokens = 0
        self.prompt_token_ids: List[int] = []
        self.prompt_logprobs = None  # with prompt_logprobs: [None, {id: Logprob}, ...]

    def add(self, out: RequestOutput) -> None:
        self.prompt_tokens = len(out.prompt_token_ids)
        self.prompt_token_ids = out.prompt_token_ids
        self.cached_tokens = out.num_cached_tokens
        if out.prompt_logprobs is not None:
            self.prompt_logprobs = out.prompt_logprobs
        for c in out.outputs:
            index = self.first_index + c.index
            self.choices.setdefault(index, Choice(index)).add(c)

    @property
    def completion_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.choices.values())
