"""A model's own chat template (the Jinja text of `tokenizer.chat_template`),
rendered exactly as Hugging Face transformers' `apply_chat_template(...,
tokenize=False)` renders it.

The template comes from a downloaded file, so it is untrusted input: it runs
in jinja2's immutable sandbox, and every value it can see is rebuilt from
plain JSON types first, as transformers does. The environment is the one
transformers builds: trim_blocks and lstrip_blocks, the loop controls
(`break`, `continue`), a `{% generation %}` block tag, a `tojson` filter that
keeps non-ASCII text and HTML characters as they are, and the globals
`raise_exception`, `strftime_now`, a restricted `dict` and a `namespace`
that refuses underscore attributes. A render has a budget of steps and
characters (render_budget.py): a template that loops or builds a huge string
is stopped with a ChatTemplateError.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Optional

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["ChatTemplateError", "render_chat_template", "template_from_metadata", "special_tokens_for"]


from . import render_budget  # noqa: E402
from .errors import ChatTemplateError, HearthError  # noqa: E402


# --- the environment ---------------------------------------------------------

class _TemplateRefusal(jinja2.exceptions.TemplateError):
    """What raise_exception throws: a TemplateError, as in transformers."""


def _raise_exception(message):
    raise _TemplateRefusal(message)


def _strftime_now(format):
    return datetime.now().strftime(format)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # jinja2's own tojson escapes <, >, & and ' for HTML; a prompt wants the JSON itself.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _DictFactory:
    """`dict(...)` and `dict.fromkeys(...)` in a template, without handing the
    template the `dict` type itself (whose attributes lead on to `object`)."""

    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


def _check_namespace_name(name):
    if isinstance(name, str) and name.startswith("_"):
        raise jinja2.exceptions.SecurityError(
            f"a chat template may not store an underscore attribute on a namespace (got {name!r})")


class _SafeNamespace(jinja2.utils.Namespace):
    """jinja2's namespace, refusing names that start with an underscore: they
    would reach the object's internals."""

    def __init__(*args, **kwargs):  # noqa: N805 (jinja2's signature, so that namespace(self=1) works)
        self, rest = args[0], args[1:]
        attrs = dict(*rest, **kwargs)
        for name in attrs:
            _check_namespace_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _check_namespace_name(name)
        render_budget.check_size(f"namespace attribute '{name}'", value)  # the one state a loop can grow
        jinja2.utils.Namespace.__setitem__(self, name, value)


class _GenerationBlock(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` marks the assistant's text for
    transformers' training masks; rendering prints the body alone."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        # A call block, as in transformers: a {% set %} inside stays inside.
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


# Older jinja2 releases have known sandbox escapes (transformers refuses them too).
_MIN_JINJA2 = (3, 1, 6)


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox, refusing before it is built any string or number larger
    than the render budget (render_budget.py)."""
    intercepted_binops = frozenset(["+", "*", "**", "%"])

    def call_binop(self, context, operator, left, right):
        render_budget.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (jinja2's signature)
        name = getattr(__obj, "__name__", None) or getattr(__obj, "name", None) or type(__obj).__name__  # a macro: .name
        render_budget.check_call(name, args, kwargs, getattr(__obj, "__self__", None))
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value):
        # str.format is replaced by jinja2's own wrapper when looked up, so
        # call() sees the wrapper: check the format string here
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            render_budget.check_call("format", (), {}, value.__self__)
        return wrapped


def _budgeted_filter(name: str, f):
    @functools.wraps(f)
    def checked(*args, **kwargs):
        render_budget.check_call(name, args, kwargs)
        return f(*args, **kwargs)
    return checked


def _version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


@functools.lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    if _version_tuple(jinja2.__version__) < _MIN_JINJA2:
        raise ImportError(f"chat templates need jinja2 >= {'.'.join(map(str, _MIN_JINJA2))} (older versions have "
                          f"known sandbox escapes); this is jinja2 {jinja2.__version__}: pip install -U jinja2")
    env = _BudgetedSandbox(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols])
    for name in ("center", "indent", "wordwrap", "truncate", "format", "replace"):  # filters that can grow text
        env.filters[name] = _budgeted_filter(name, env.filters[name])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _DictFactory()
    env.globals["namespace"] = _SafeNamespace
    return env


@functools.lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    """The compiled template; compiling costs far more than rendering, and a
    chat renders the same template once per turn."""
    try:
        return _environment().from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as e:
        raise ChatTemplateError(f"the chat template does not compile: {e.message} (line {e.lineno})") from e


# --- what the template sees ----------------------------------------------------

def _plain(value: Any) -> Any:
    """value rebuilt from JSON types. Subclasses of str / int / float (enums,
    numpy scalars) and objects carry methods the sandbox does not know to be
    dangerous, so they become their base value, or an inert "<TypeName>"."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    numpy = sys.modules.get("numpy")  # no numpy object can exist unless numpy was imported
    if numpy is not None and isinstance(value, numpy.generic):
        return _plain(value.item())  # np.bool_(False) must not become a truthy placeholder
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic models, e.g. the OpenAI SDK's messages
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _as_dict(message: Any) -> Any:
    """A message object (dataclass, pydantic model, mapping) as a dict, else as it is."""
    if isinstance(message, Mapping):
        return dict(message)
    if dataclasses.is_dataclass(message) and not isinstance(message, type):
        return {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    if callable(getattr(message, "model_dump", None)):
        return message.model_dump()
    return message


# The names a message's reasoning goes by; templates read reasoning_content,
# gpt-oss's reads thinking.
_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


def _conversation(messages) -> list:
    if not isinstance(messages, (list, tuple)):
        raise TypeError(f"messages must be a list of dicts, got {type(messages).__name__}")
    if len(messages) == 0:
        raise ValueError("cannot apply a chat template to an empty conversation: give at least one message")
    chat = []
    for message in messages:
        message = _as_dict(message)
        if not isinstance(message, dict):
            raise TypeError(f"chat messages must be dicts, got {message!r}")
        # APIs send content=None / tool_calls=None; templates handle a missing key, not None.
        message = _plain({k: v for k, v in message.items() if v is not None})
        reasoning = next((message[k] for k in _REASONING_KEYS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        chat.append(message)
    return chat


def _tool_schemas(tools):
    if tools is None:
        return None
    schemas = []
    for tool in tools:
        tool = _as_dict(tool)
        if not isinstance(tool, dict):
            raise ValueError(f"tools must be JSON schemas (dicts), got {tool!r}; "
                             "hearthlm does not build schemas from Python functions")
        schemas.append(tool)
    return _plain(schemas)


def _documents(documents):
    if documents is None:
        return None
    for document in documents:
        if not isinstance(document, Mapping):
            raise TypeError(f"documents must be dicts (with 'title' and 'text'), got {document!r}")
    return _plain(list(documents))


# --- rendering -----------------------------------------------------------------

def render_chat_template(template: str, messages: list, *, add_generation_prompt: bool = True,
                         bos_token: Optional[str] = "", eos_token: Optional[str] = "",
                         tools=None, documents=None, continue_final_message: bool = False, **extra) -> str:
    """The prompt text that template makes of the conversation.

    Equal to transformers' `tokenizer.apply_chat_template(messages,
    tokenize=False, add_generation_prompt=..., chat_template=template)` for a
    tokenizer whose special tokens are bos_token / eos_token. A token given
    as None is left undefined, as transformers leaves a tokenizer's unset
    ones. extra: more template variables (date_string, enable_thinking,
    unk_token, ...); they win over bos_token / eos_token, as in transformers.
    continue_final_message: the text ends where the last message's content
    does (no end of turn), so that the model continues it (transformers').

    Raises ChatTemplateError when the template does not compile, refuses the
    conversation (its raise_exception) or fails while rendering.
    """
    if not isinstance(template, str) or not template:
        raise ChatTemplateError("there is no chat template (the model's tokenizer.chat_template is missing or empty)")
    compiled = _compile(template)
    chat = _conversation(messages)
    if continue_final_message and add_generation_prompt:
        raise HearthError("continue_final_message and add_generation_prompt cannot both be true: "
                          "pass add_generation_prompt=False to continue the last message",
                          param="continue_final_message")
    reserved = sorted(set(extra) & {"messages", "tools", "documents", "add_generation_prompt",
                                    "continue_final_message"})
    if reserved:
        raise TypeError(f"render_chat_template() got {', '.join(reserved)} twice (as arguments and in extra)")
    variables = {name: token for name, token in (("bos_token", bos_token), ("eos_token", eos_token))
                 if token is not None}
    variables.update(_plain(extra))
    tool_schemas, plain_documents = _tool_schemas(tools), _documents(documents)
    try:
        with render_budget.BudgetTracer():
            pieces = compiled.generate(messages=chat, tools=tool_schemas, documents=plain_documents,
                                       add_generation_prompt=add_generation_prompt, **variables)
            text = render_budget.joined_within_budget(pieces)
    except render_budget.RenderBudgetExceeded as e:
        raise ChatTemplateError(f"the chat template was stopped: {e}") from None
    except _TemplateRefusal as e:
        raise ChatTemplateError(f"the chat template refused the conversation: {e.message}") from e
    except jinja2.exceptions.SecurityError as e:
        raise ChatTemplateError(f"the chat template tried an unsafe operation: {e}") from e
    except jinja2.exceptions.TemplateError as e:
        raise ChatTemplateError(f"the chat template failed to render: {type(e).__name__}: {e}") from e
    except Exception as e:  # a template can fail in plain Python: 'a' + none, a bad index, ...
        raise ChatTemplateError(f"the chat template failed to render: {type(e).__name__}: {e}") from e
    return _cut_after_final_message(text, chat) if continue_final_message else text


def _cut_after_final_message(text: str, chat: list) -> str:
    """text up to the end of the last message's content, as transformers'
    continue_final_message cuts it (a template may trim the content's
    trailing spaces)."""
    final = chat[-1].get("content")
    if isinstance(final, (list, tuple)):  # content parts: the last text one
        final = next((part["text"] for part in reversed(final) if isinstance(part, Mapping) and "text" in part), None)
    if not isinstance(final, str) or final.strip() not in text:
        raise ChatTemplateError("continue_final_message: the final message's text does not appear in the "
                                "rendered chat, so there is nothing to continue")
    at = text.rindex(final.strip())
    if text[at:at + len(final.lstrip())] == final:
        return text[:at + len(final.lstrip())]
    return text[:at + len(final.strip())]


# --- GGUF metadata -------------------------------------------------------------

def template_from_metadata(metadata: Mapping, name: Optional[str] = None) -> Optional[str]:
    """The chat template of a GGUF file's metadata (`tokenizer.chat_template`,
    or the named one, `tokenizer.chat_template.NAME`), None when there is none."""
    key = "tokenizer.chat_template" if name is None else f"tokenizer.chat_template.{name}"
    template = metadata.get(key)
    return template if isinstance(template, str) and template else None


# GGUF's id keys for the special tokens a tokenizer's special_tokens_map names.
_SPECIAL_TOKEN_KEYS = {
    "bos_token": "tokenizer.ggml.bos_token_id",
    "eos_token": "tokenizer.ggml.eos_token_id",
    "unk_token": "tokenizer.ggml.unknown_token_id",
    "sep_token": "tokenizer.ggml.seperator_token_id",
    "pad_token": "tokenizer.ggml.padding_token_id",
    "mask_token": "tokenizer.ggml.mask_token_id",
}


def special_tokens_for(metadata: Mapping) -> dict:
    """The special-token strings a chat template reads (bos_token, eos_token,
    and unk / sep / pad / mask where the file names them), from the
    GGUF ids and `tokenizer.ggml.tokens`. A token the file does not name is
    left out, as transformers leaves out a tokenizer's unset ones."""
    tokens = metadata.get("tokenizer.ggml.tokens") or []
    out = {}
    for name, key in _SPECIAL_TOKEN_KEYS.items():
        token_id = metadata.get(key)
        if isinstance(token_id, int) and not isinstance(token_id, bool) and 0 <= token_id < len(tokens):
            out[name] = tokens[token_id]
    return out
