"""The OpenAI request bodies the server accepts (pydantic models, as vLLM's
protocol.py), and how each becomes the engine's SamplingParams.

Unknown fields are ignored, as vLLM does; a known field with a bad value is
a 400 that names it (BadRequest below)."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ..sampling_params import SamplingParams
from ..structured import StructuredOutputsParams
from .tools import ToolError, ToolPlan, plan_tools, template_messages, with_tools


class BadRequest(ValueError):
    """A request the server refuses with 400; param names the field."""

    def __init__(self, message: str, param: Optional[str] = None):
        super().__init__(message)
        self.param = param


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class ResponseFormat(_Body):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[Dict[str, Any]] = None


class _SamplingFields(_Body):
    model: Optional[str] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    n: int = 1
    stop: Union[str, List[str], None] = None
    seed: Optional[int] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    logit_bias: Optional[Dict[str, float]] = None  # token id (as a string) -> bias in [-100, 100]
    stream: bool = False
    stream_options: Optional[StreamOptions] = None
    user: Optional[str] = None
    response_format: Optional[ResponseFormat] = None
    # vLLM's extensions
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    repetition_penalty: Optional[float] = None
    ignore_eos: bool = False
    min_tokens: int = 0
    stop_token_ids: Optional[List[int]] = None
    allowed_token_ids: Optional[List[int]] = None
    bad_words: Optional[List[str]] = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    structured_outputs: Optional[Dict[str, Any]] = None  # {"json" | "regex" | "choice" | "grammar": ...}

    def _structured(self) -> Optional[StructuredOutputsParams]:
        """response_format (OpenAI's) or structured_outputs (vLLM's)."""
        rf = self.response_format
        if rf is not None and rf.type != "text" and self.structured_outputs is not None:
            raise BadRequest("give response_format or structured_outputs, not both", "structured_outputs")
        if rf is not None and rf.type == "json_object":
            return StructuredOutputsParams(json_object=True)
        if rf is not None and rf.type == "json_schema":
            js = rf.json_schema or {}
            schema = js.get("schema", js.get("json_schema"))
            if not isinstance(schema, dict):
                raise BadRequest("response_format.json_schema.schema must be a JSON schema object", "response_format")
            return StructuredOutputsParams(json=schema)
        if self.structured_outputs is not None:
            try:
                return StructuredOutputsParams(**self.structured_outputs)
            except (TypeError, ValueError) as e:
                raise BadRequest(f"structured_outputs: {e}", "structured_outputs") from None
        return None

    def _sampling(self, max_tokens: Optional[int], logprobs: Optional[int],
                  forced: Optional[StructuredOutputsParams] = None) -> SamplingParams:
        """forced: the schema a tool_choice imposes on the answer."""
        structured = self._structured()
        if forced is not None:
            if structured is not None:
                raise BadRequest("give response_format or a tool_choice that forces a call, not both", "tool_choice")
            structured = forced
        if self.stream_options is not None and not self.stream:
            raise BadRequest("stream_options is only allowed with stream=true", "stream_options")
        if self.n < 1:
            raise BadRequest(f"n must be at least 1, got {self.n}", "n")
        if max_tokens is not None and max_tokens < 1:
            raise BadRequest(f"max_tokens must be at least 1, got {max_tokens}", "max_tokens")
        logit_bias = None
        if self.logit_bias is not None:
            logit_bias = {}
            for key, bias in self.logit_bias.items():
                try:
                    token = int(key)
                except ValueError:
                    raise BadRequest(f"logit_bias keys must be token ids, got {key!r}", "logit_bias") from None
                if not math.isfinite(bias):
                    raise BadRequest(f"logit_bias of token {key} must be a finite number, got {bias}", "logit_bias")
                logit_bias[token] = min(100.0, max(-100.0, bias))  # OpenAI's range; vLLM clamps too
        seed = self.seed
        if seed is not None:
            seed %= 2 ** 64  # OpenAI's seeds may be negative
        try:
            return SamplingParams(
                n=self.n,
                temperature=1.0 if self.temperature is None else self.temperature,
                top_p=1.0 if self.top_p is None else self.top_p,
                top_k=-1 if self.top_k is None else self.top_k,
                min_p=0.0 if self.min_p is None else self.min_p,
                repetition_penalty=1.0 if self.repetition_penalty is None else self.repetition_penalty,
                presence_penalty=self.presence_penalty or 0.0,
                frequency_penalty=self.frequency_penalty or 0.0,
                logit_bias=logit_bias, allowed_token_ids=self.allowed_token_ids, bad_words=self.bad_words,
                max_tokens=max_tokens, stop=self.stop, stop_token_ids=self.stop_token_ids,
                include_stop_str_in_output=self.include_stop_str_in_output, ignore_eos=self.ignore_eos,
                min_tokens=self.min_tokens,
                seed=seed, logprobs=logprobs, skip_special_tokens=self.skip_special_tokens,
                structured_outputs=structured)
        except ValueError as e:
            raise BadRequest(str(e), getattr(e, "param", None) or _param_of(str(e))) from None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatMessage(_Body):
    role: str
    content: Union[str, List[Dict[str, Any]], None] = None
    name: Optional[str] = None
    tool_calls: Optional[List[Dict[str, Any]]] = None  # an assistant's earlier calls
    tool_call_id: Optional[str] = None                 # a tool message answers this call


class ChatCompletionRequest(_SamplingFields):
    messages: List[ChatMessage] = Field(min_length=1)
    max_tokens: Optional[int] = None
    max_completion_tokens: Optional[int] = None
    logprobs: bool = False
    top_logprobs: Optional[int] = None
    # vLLM's extensions
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: Optional[Dict[str, Any]] = None
    tools: Optional[List[Any]] = None
    tool_choice: Union[str, Dict[str, Any], None] = None
    parallel_tool_calls: Optional[bool] = None

    def tool_plan(self, auto_parser: Optional[str] = None) -> ToolPlan:
        try:
            return plan_tools(self.tools, self.tool_choice, self.parallel_tool_calls, auto_parser)
        except ToolError as e:
            raise BadRequest(str(e), e.param) from None

    def template_kwargs(self, plan: ToolPlan) -> Optional[Dict[str, Any]]:
        return with_tools(self.chat_template_kwargs, plan.tools)

    def sampling_params(self, plan: Optional[ToolPlan] = None) -> SamplingParams:
        if self.top_logprobs is not None:
            if self.top_logprobs > 0 and not self.logprobs:  # 0 alone is harmless, as vLLM lets it be
                raise BadRequest("top_logprobs needs logprobs=true", "top_logprobs")
            if not 0 <= self.top_logprobs <= 20:
                raise BadRequest(f"top_logprobs must be in [0, 20], got {self.top_logprobs}", "top_logprobs")
        max_tokens = self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens
        if plan is not None and plan.forced and self.include_stop_str_in_output:
            raise BadRequest("include_stop_str_in_output does not work with a forced tool call: the text is the "
                             "call's arguments", "include_stop_str_in_output")
        params = self._sampling(max_tokens, (self.top_logprobs or 0) if self.logprobs else None,
                                plan.structured() if plan is not None else None)
        if plan is not None and plan.parser:
            params.skip_special_tokens = False  # the call tags may be special tokens (vLLM does the same)
        return params

    def conversation(self) -> List[dict]:
        return template_messages(conversation_of(self.messages))


def conversation_of(messages: List[ChatMessage]) -> List[dict]:
    """The messages as the chat template takes them: a content given as text
    parts becomes their texts joined by newlines (as vLLM joins them)."""
    out = []
    for i, m in enumerate(messages):
        content = m.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise BadRequest(f"messages[{i}].content: only text parts are supported, got "
                                     f"{part.get('type')!r}", "messages")
                texts.append(part["text"])
            content = "\n".join(texts)
        msg = {"role": m.role, "content": content if content is not None else ""}
        if m.name is not None:
            msg["name"] = m.name
        if m.tool_calls is not None:
            msg["tool_calls"] = m.tool_calls
        if m.tool_call_id is not None:
            msg["tool_call_id"] = m.tool_call_id
        out.append(msg)
    return out


class CompletionRequest(_SamplingFields):
    prompt: Union[str, List[str], List[int], List[List[int]]]
    max_tokens: Optional[int] = 16
    logprobs: Optional[int] = None
    echo: bool = False
    suffix: Optional[str] = None

    def sampling_params(self) -> SamplingParams:
        if self.suffix:
            raise BadRequest("suffix is not supported", "suffix")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise BadRequest(f"logprobs must be in [0, 20], got {self.logprobs}", "logprobs")
        return self._sampling(self.max_tokens, self.logprobs)

    def prompts(self) -> List[Union[str, List[int]]]:
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if not p:
            raise BadRequest("prompt is empty", "prompt")
        if all(isinstance(t, int) for t in p):
            return [list(p)]
        if any(isinstance(x, list) and not x for x in p):
            raise BadRequest("prompt: a list of token ids is empty", "prompt")
        return list(p)


class TokenizeRequest(_Body):
    model: Optional[str] = None
    prompt: Optional[str] = None
    messages: Optional[List[ChatMessage]] = None
    add_special_tokens: bool = True
    add_generation_prompt: bool = True
    continue_final_message: bool = False
    chat_template_kwargs: Optional[Dict[str, Any]] = None
    tools: Optional[List[Any]] = None

    def template_kwargs(self) -> Optional[Dict[str, Any]]:
        return with_tools(self.chat_template_kwargs, self.tools)

    def conversation(self) -> List[dict]:
        return template_messages(conversation_of(self.messages or []))


class DetokenizeRequest(_Body):
    model: Optional[str] = None
    tokens: List[int]


_PARAMS = {"ignore_eos", "min_tokens", "n", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty",
           "frequency_penalty", "max_tokens", "stop", "stop_token_ids", "seed", "logprobs"}


def _param_of(message: str) -> Optional[str]:
    """The field a SamplingParams error message starts with, if it is one."""
    first = message.split(" ", 1)[0].strip(":'\"")
    return first if first in _PARAMS else None
