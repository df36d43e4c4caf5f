"""Tool calls in a model's own words, for tool_choice "auto": the Hermes
format that Qwen2.5 and Hermes models are trained to write (vLLM's
``--tool-call-parser hermes``):

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

One parser serves whole answers and streams alike, so both give the same
content and calls: text outside the blocks is content (the whitespace right
after a call is dropped); a block whose JSON does not hold a name stays
text (as in vLLM, the first </tool_call> closes a block, even one inside a
JSON string).
A stream holds back text that may be the start of ``<tool_call>`` and sends
each call whole when its block closes."""

from __future__ import annotations

import json
from typing import List, Optional, Tuple

from .tools import tool_call

START, END = "<tool_call>", "</tool_call>"


def _call_of(body: str) -> Optional[dict]:
    """The OpenAI tool call a block's JSON describes, or None."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return None
    arguments = value.get("arguments", value.get("parameters", {}))
    if isinstance(arguments, str):  # already JSON text: passed on as it is, not encoded twice
        try:
            if isinstance(json.loads(arguments), dict):
                return tool_call(value["name"], arguments)
        except ValueError:
            pass
    return tool_call(value["name"], json.dumps(arguments, ensure_ascii=False))


def _held_back(text: str) -> int:
    """How many characters at the end of text may begin START."""
    for n in range(min(len(text), len(START) - 1), 0, -1):
        if START.startswith(text[-n:]):
            return n
    return 0


class HermesStream:
    """One choice's text, fed as it is generated; each feed returns the
    OpenAI deltas it completes ({"content": ...} or {"tool_calls": [...]})."""

    def __init__(self):
        self.pending = ""    # text not yet decided
        self.in_call = False  # inside <tool_call> ... </tool_call>
        self.after_call = False  # no text but whitespace since the last call
        self.calls: List[dict] = []

    def _content(self, text: str) -> List[dict]:
        if self.after_call:  # the whitespace after a call goes, however the text is cut into pieces
            text = text.lstrip()
            self.after_call = not text
        return [{"content": text}] if text else []

    def _called(self, call: dict) -> List[dict]:
        self.calls.append(call)
        self.after_call = True
        return [{"tool_calls": [{"index": len(self.calls) - 1, **call}]}]

    def _close_call(self, body: str) -> List[dict]:
        call = _call_of(body)
        if call is None:  # not a call after all: the text as it came
            return self._content(START + body + END)
        return self._called(call)

    def feed(self, text: str) -> List[dict]:
        self.pending += text
        out: List[dict] = []
        while True:
            if self.in_call:
                end = self.pending.find(END)
                if end < 0:
                    return out
                out += self._close_call(self.pending[:end])
                self.pending = self.pending[end + len(END):]
                self.in_call = False
                continue
            start = self.pending.find(START)
            if start < 0:
                keep = _held_back(self.pending)
                out += self._content(self.pending[:len(self.pending) - keep])
                self.pending = self.pending[len(self.pending) - keep:]
                return out
            out += self._content(self.pending[:start])
            self.pending = self.pending[start + len(START):]
            self.in_call = True

    def finish(self) -> List[dict]:
        """The rest, at the end of the answer: an unclosed block is a call
        if its JSON is whole (a model may stop before </tool_call>)."""
        rest, self.pending = self.pending, ""
        if not self.in_call:
            return self._content(rest)
        self.in_call = False
        call = _call_of(rest)
        if call is None:
            return self._content(START + rest)
        return self._called(call)


class AutoToolDeltas:
    """A streamed choice under tool_choice "auto" (the interface of
    tools.ToolDeltas): content as it comes, each call when its block closes."""

    def __init__(self):
        self.stream = HermesStream()

    def feed(self, text: str) -> List[dict]:
        return self.stream.feed(text)

    def finish(self, finish_reason: Optional[str]) -> Tuple[List[dict], Optional[str]]:
        deltas = self.stream.finish()
        return deltas, "tool_calls" if self.stream.calls and finish_reason == "stop" else finish_reason
