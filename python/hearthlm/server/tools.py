"""Tool calling on /v1/chat/completions, as vLLM does it: the request's
``tools`` go to the chat template, and a
``tool_choice`` that forces a call ("required", or one named function) is
enforced while sampling with a JSON schema (the structured-output path), so
the calls always parse. "auto" lets the model choose, in its own format,
which a parser reads back (tool_parser.py; with --enable-auto-tool-choice
--tool-call-parser hermes, as vLLM's flags); without them it is a 400, as
in vLLM."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from ..structured import StructuredOutputsParams


class ToolError(ValueError):
    """A bad tools / tool_choice field; param names it."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


_NO_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": False}  # a function of no arguments


@dataclass
class ToolPlan:
    """What a request's tools ask of the answer."""

    tools: Optional[List[dict]] = None      # for the chat template (None: no tools)
    forced: Optional[str] = None            # None, "required" or "named"
    parser: Optional[str] = None            # "auto": the parser of the model's own call format
    name: Optional[str] = None              # the named function
    schema: Optional[dict] = field(default=None, repr=False)

    def structured(self) -> Optional[StructuredOutputsParams]:
        return StructuredOutputsParams(json=self.schema) if self.schema is not None else None

    def calls(self, text: str, finish_reason: Optional[str]) -> Optional[List[dict]]:
        """OpenAI's tool_calls for a finished answer's text. A named call is
        its arguments as generated, even cut short (as vLLM's); "required"
        calls only when the answer ended and parses, else None (the text is
        then shown as it is)."""
        if self.forced == "named":
            return [tool_call(self.name, text)]
        if finish_reason != "stop":
            return None
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return [tool_call(c["name"], json.dumps(c["parameters"], ensure_ascii=False)) for c in value]

    def finish_reason_of(self, finish_reason: Optional[str]) -> Optional[str]:
        """OpenAI's: "tool_calls" when the model chose to call, "stop" when a
        named function was forced; "length" stays."""
        if finish_reason != "stop":
            return finish_reason
        return "stop" if self.forced == "named" else "tool_calls"


def tool_call(name: str, arguments: str) -> dict:
    return {"id": f"chatcmpl-tool-{uuid.uuid4().hex}", "type": "function",
            "function": {"name": name, "arguments": arguments}}


def _functions(tools: Any) -> Dict[str, dict]:
    """name -> function definition, checked."""
    if not isinstance(tools, list):
        raise ToolError("tools must be a list of {\"type\": \"function\", \"function\": {...}}", "tools")
    out: Dict[str, dict] = {}
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type", "function") != "function" or not isinstance(fn, dict):
            raise ToolError(f"tools[{i}] must be {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}", "tools")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise ToolError(f"tools[{i}].function.name must be a non-empty string", "tools")
        params = fn.get("parameters") or _NO_PARAMETERS  # {} and null are "no parameters", as in vLLM
        if not isinstance(params, dict):
            raise ToolError(f"tools[{i}].function.parameters must be a JSON schema object", "tools")
        if name in out:
            raise ToolError(f"tools[{i}]: a second function named {name!r}", "tools")
        out[name] = {**fn, "parameters": params}
    return out


def plan_tools(tools: Optional[list], tool_choice: Union[str, dict, None],
               parallel_tool_calls: Optional[bool] = None, auto_parser: Optional[str] = None) -> ToolPlan:
    """The ToolPlan of a request's tools, tool_choice and parallel_tool_calls
    (ToolError names the bad field); auto_parser: the server's
    --tool-call-parser, which "auto" needs."""
    if tools is None:
        if tool_choice not in (None, "none"):
            raise ToolError("tool_choice needs tools", "tool_choice")
        return ToolPlan()
    functions = _functions(tools)
    if tool_choice is None:
        tool_choice = "auto" if functions else "none"  # OpenAI's default
    if tool_choice == "none":
        return ToolPlan(tools=tools)
    if tool_choice == "auto":
        if auto_parser is None:
            raise ToolError('"auto" tool choice needs a parser of the model\'s own tool-call format: start '
                            'hearth-server with --enable-auto-tool-choice --tool-call-parser hermes, or give '
                            'tool_choice "required", "none" or a named function', "tool_choice")
        return ToolPlan(tools=tools, parser=auto_parser)
    if tool_choice == "required":
        if not functions:
            raise ToolError('tool_choice "required" needs at least one tool', "tool_choice")
        # each tool's parameters a schema resource of its own ($id): nested
        # in the array, its "#/$defs/X", "#" and anchors would resolve
        # against the array's schema
        defs, refs = {}, []
        for i, fn in enumerate(functions.values()):
            params = fn["parameters"]
            ref = params.get("$id") if isinstance(params.get("$id"), str) else f"urn:hearth:tool_{i}"
            defs[f"tool_{i}"] = {"$id": ref, **params}
            refs.append(ref)
        one_of = [{"type": "object", "properties": {"name": {"type": "string", "enum": [name]},
                                                    "parameters": {"$ref": ref}},
                   "required": ["name", "parameters"], "additionalProperties": False}
                  for name, ref in zip(functions, refs)]
        schema = {"type": "array", "minItems": 1, "items": {"anyOf": one_of}, "$defs": defs}
        if parallel_tool_calls is False:
            schema["maxItems"] = 1
        return ToolPlan(tools=tools, forced="required", schema=schema)
    fn = tool_choice.get("function") if isinstance(tool_choice, dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(name, str) or tool_choice.get("type", "function") != "function":
        raise ToolError('tool_choice must be "none", "auto", "required" or '
                        '{"type": "function", "function": {"name": ...}}', "tool_choice")
    if name not in functions:
        raise ToolError(f"tool_choice names {name!r}, which is not among the tools", "tool_choice")
    return ToolPlan(tools=tools, forced="named", name=name, schema=functions[name]["parameters"])


def with_tools(chat_template_kwargs: Optional[Dict[str, Any]], tools: Optional[list]) -> Optional[Dict[str, Any]]:
    """chat_template_kwargs with the request's tools, unless they set their own."""
    if tools is None:
        return chat_template_kwargs
    return {"tools": tools, **(chat_template_kwargs or {})}


def template_messages(messages: List[dict]) -> List[dict]:
    """An assistant message's tool_calls as chat templates read them: the
    arguments as an object, not a JSON string (as vLLM hands them over)."""
    out = []
    for m in messages:
        calls = m.get("tool_calls")
        if m.get("role") == "assistant" and isinstance(calls, list):
            fixed = []
            for c in calls:
                fn = c.get("function") if isinstance(c, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    try:
                        c = {**c, "function": {**fn, "arguments": json.loads(fn["arguments"])}}
                    except ValueError:
                        pass  # left as the text it is
                fixed.append(c)
            m = {**m, "tool_calls": fixed}
        out.append(m)
    return out


class ToolDeltas:
    """One streamed choice's deltas when a call is forced: a named function's
    arguments stream as they come (OpenAI's shape: the first delta carries
    the call's id and name); "required" calls are sent whole at the end,
    once the array they form parses."""

    def __init__(self, plan: ToolPlan):
        self.plan = plan
        self.text = ""
        self.call_id: Optional[str] = None

    def feed(self, text: str) -> List[dict]:
        """The deltas newly generated text completes."""
        self.text += text
        if self.plan.forced != "named" or not text:
            return []
        if self.call_id is None:
            call = tool_call(self.plan.name, text)
            self.call_id = call["id"]
            return [{"tool_calls": [{"index": 0, **call}]}]
        return [{"tool_calls": [{"index": 0, "function": {"arguments": text}}]}]

    def finish(self, finish_reason: Optional[str]) -> Tuple[List[dict], Optional[str]]:
        """The last deltas and the finish_reason to report."""
        reported = self.plan.finish_reason_of(finish_reason)
        if self.plan.forced == "named":
            return [], reported  # the arguments are out already
        calls = self.plan.calls(self.text, finish_reason)
        if calls is None:  # cut short: the text as it is
            return ([{"content": self.text}] if self.text else []), finish_reason
        return [{"tool_calls": [{"index": k, **c} for k, c in enumerate(calls)]}], reported
