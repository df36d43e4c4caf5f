"""A budget for rendering an untrusted chat template.

jinja2's sandbox stops a template from reaching Python's internals, but not
from spending the machine: two nested loops over range(100000), `'x' * 10**9`
or `'x'|center(10**9)` run for minutes or take gigabytes before anything
fails. A chat template arrives inside a downloaded model file, and a server
renders it for every request, so a render gets a budget:

- steps: lines of the compiled template executed, counted by a trace
  function that sees only the template's own frames (a loop costs a step
  per iteration however empty its body);
- depth: the template's own frames nested in one another (a macro calling
  itself, a recursive loop), stopped long before Python's recursion limit:
  deep recursion under a trace function can overflow the C stack and crash
  the process instead of raising RecursionError;
- size: characters of output, and the size of any single string or list the
  template builds with `*`, `%` or a padding call, checked *before* it is
  built.

Exceeding either raises RenderBudgetExceeded, which names the limit.
"""

from __future__ import annotations

import numbers
import re
import sys
from typing import Any, Iterable

# A real chat template spends a few dozen steps a message (SmolLM2's ChatML:
# about 12; the longest of tests/data/chat_templates about 60): a million
# leaves room for conversations of ten thousand messages and stops a runaway
# loop in well under a second. 8 Mi characters are many context windows of text.
MAX_STEPS = 1_000_000
MAX_CHARS = 8 * 1024 * 1024
# A macro call is one template frame and about six Python frames: 64 keeps a
# render under 400 Python frames, while a recursive macro that prints a
# tool's JSON schema nests once per level of the schema (a handful).
MAX_DEPTH = 64

TEMPLATE_FILENAME = "<template>"  # what jinja2 names the code it compiles from a string

_NUMBER = re.compile(r"\d+")
_PADDING_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs", "indent", "wordwrap", "truncate"}


class RenderBudgetExceeded(RuntimeError):
    """The template spent more than its budget (steps or characters)."""


def _too_big(what: str, size: float) -> RenderBudgetExceeded:
    return RenderBudgetExceeded(f"the chat template would build {what} of {size:.3g} characters "
                                f"(the render budget allows {MAX_CHARS})")


def _length(x: Any) -> int:
    return len(x) if isinstance(x, (str, bytes, list, tuple)) else 0


def _check_format_string(fmt: str) -> None:
    """A %-style or {}-style format string may ask for a field as wide as
    any number it holds: refuse numbers past the budget."""
    for digits in _NUMBER.findall(fmt):
        if len(digits) > 7 and int(digits) > MAX_CHARS:
            raise _too_big("a formatted field", float(digits))


def check_size(what: str, value: Any) -> None:
    """Refuses a string or list that is already larger than the budget (a
    namespace attribute or an argument grown by repeated doubling)."""
    if _length(value) > MAX_CHARS:
        raise _too_big(what, _length(value))


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuses, before Python builds it, the result of `left op right` when
    it would be larger than the budget."""
    if op == "+":
        if _length(left) and _length(right) and _length(left) + _length(right) > MAX_CHARS:
            raise _too_big("a joined string or list", _length(left) + _length(right))
    elif op == "*":
        for seq, n in ((left, right), (right, left)):
            if _length(seq) and isinstance(n, numbers.Integral) and _length(seq) * int(n) > MAX_CHARS:
                raise _too_big("a repeated string or list", _length(seq) * int(n))
    elif op == "**":
        if isinstance(left, numbers.Integral) and isinstance(right, numbers.Integral) and abs(int(left)) > 1 \
                and int(right) > 4096:
            raise RenderBudgetExceeded(f"the chat template computes {left} ** {right}: an integer too large "
                                       f"to render (the render budget allows exponents up to 4096)")
    elif op == "%" and isinstance(left, str):
        _check_format_string(left)


def check_call(name: str, args: Iterable[Any], kwargs: dict, subject: Any = None) -> None:
    """Refuses a call (a method, a filter, a macro) that is given, or would
    build, more characters than the budget: a padding width past it, a
    format string asking for such a field, a replace that would outgrow it,
    an argument already past it. subject: the string a method is called on."""
    values = list(args) + list(kwargs.values())
    for a in values:
        check_size(f"an argument of {name}()", a)
    if name in _PADDING_METHODS:
        for a in values:
            if isinstance(a, numbers.Integral) and not isinstance(a, bool) and int(a) > MAX_CHARS:
                raise _too_big(f"the result of {name}()", int(a))
    elif name == "format":
        for fmt in [subject] + values[:1]:
            if isinstance(fmt, str):
                _check_format_string(fmt)
    elif name == "replace":
        strings = [x for x in [subject] + values if isinstance(x, str)]
        if len(strings) >= 3:  # the text, the old part, the new part
            text, old, new = strings[:3]
            grown = len(text) + (text.count(old) if old else len(text) + 1) * max(len(new) - len(old), 0)
            if grown > MAX_CHARS:
                raise _too_big("the result of replace()", grown)


class BudgetTracer:
    """A trace function, installed for one render, that counts the lines the
    template's own code executes and how deeply its frames nest (other
    frames are not traced at all)."""

    def __init__(self, max_steps: int = MAX_STEPS, max_depth: int = MAX_DEPTH):
        self.max_steps, self.max_depth = max_steps, max_depth
        self.steps = 0
        self.depth = 0
        self._previous = None

    def _on_call(self, frame, event, arg):
        if frame.f_code.co_filename != TEMPLATE_FILENAME:
            return None
        # a generator's frame is 'called' at each resume and 'returns' at each
        # yield, so the depth stays balanced for the template's root generator
        self.depth += 1
        if self.depth > self.max_depth:
            self.depth -= 1  # no 'return' event follows a call refused here
            raise RenderBudgetExceeded(f"the chat template nested more than {self.max_depth} calls "
                                       f"(a macro or loop that calls itself without end)")
        return self._on_event

    def _on_event(self, frame, event, arg):
        if event == "line":
            self.steps += 1
            if self.steps > self.max_steps:
                raise RenderBudgetExceeded(f"the chat template ran more than {self.max_steps} steps "
                                           f"(a loop that does not end, or one far too long)")
        elif event == "return":  # also sent when the frame ends by an exception
            self.depth -= 1
        return self._on_event

    def __enter__(self):
        self._previous = sys.gettrace()
        sys.settrace(self._on_call)
        return self

    def __exit__(self, *exc):
        sys.settrace(self._previous)
        return False


def joined_within_budget(pieces: Iterable[str]) -> str:
    """The rendered text from jinja2's stream of pieces, stopping as soon as
    it outgrows the budget instead of after."""
    out, size = [], 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_CHARS:
            raise _too_big("an output", size)
        out.append(piece)
    return "".join(out)
