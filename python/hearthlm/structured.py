"""Structured output: answers that follow a JSON schema, any JSON object, a
regular expression or a choice of strings, enforced while sampling.

llguidance (from PyPI, made for this) turns the constraint into a grammar
and, before every token, computes the mask of the tokens that can continue
it; the C++ engine draws only from those (Engine.allow_tokens). The output
of a JSON-schema request therefore always parses and validates, unless it
is cut short by max_tokens (finish_reason "length")."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from typing import Any, List, Optional, Union

import numpy as np

from .errors import StructuredOutputError


@dataclass
class StructuredOutputsParams:
    """What the answer must be (vLLM's StructuredOutputsParams; give one):

    json: a JSON schema (dict or its JSON text); json_object=True: any JSON
    object; regex: a regular expression; choice: one of these strings;
    grammar: a Lark grammar (llguidance's dialect)."""
    json: Union[str, dict, None] = None
    json_object: Optional[bool] = None
    regex: Optional[str] = None
    choice: Optional[List[str]] = None
    grammar: Optional[str] = None

    def __post_init__(self):
        given = [n for n in ("json", "json_object", "regex", "choice", "grammar") if getattr(self, n) not in (None, False)]
        if len(given) != 1:
            raise ValueError(f"structured_outputs takes exactly one of json, json_object, regex, choice, grammar; "
                             f"got {given or 'none'}")
        if self.choice is not None and (not self.choice or not all(isinstance(c, str) for c in self.choice)):
            raise ValueError("structured_outputs.choice must be a non-empty list of strings")


def _llguidance():
    try:
        import llguidance
        import llguidance.numpy  # noqa: F401 (the bitmask helpers)
    except ImportError as e:
        raise StructuredOutputError("structured output needs the llguidance package: pip install llguidance") from e
    return llguidance


class _VocabForLLGuidance:
    """What llguidance.TokenizerWrapper reads: every token's bytes (control
    tokens marked with a leading 0xff, as llguidance expects), the ends, and
    an encoder of bytes."""

    def __init__(self, tokenizer, n_vocab: int):
        self._tok = tokenizer
        self.eos_token_id = tokenizer.eos_token_id
        self.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id >= 0 else None
        spm = tokenizer.model == "llama"
        tokens, special = [], []
        for t in range(n_vocab):
            if t >= tokenizer.n_tokens:
                tokens.append(b"")
                continue
            plain = tokenizer.decode([t], False)
            shown = tokenizer.decode([t], True)
            if not plain and shown:  # a control token: shown only with special=True
                tokens.append(b"\xff" + shown)
                special.append(t)
            elif spm:  # a lone piece loses its leading space in decode: use the piece itself
                tokens.append(_spm_piece_bytes(tokenizer.token_text(t)))
            else:
                tokens.append(shown)
        self.tokens = tokens
        self.special_token_ids = special

    def __call__(self, text: bytes) -> List[int]:
        return self._tok.encode(bytes(text), False, False)


def _spm_piece_bytes(piece: bytes) -> bytes:
    m = re.fullmatch(rb"<0x([0-9A-Fa-f]{2})>", piece)
    if m:
        return bytes([int(m.group(1), 16)])
    return piece.replace("\u2581".encode(), b" ")


class GrammarCompiler:
    """One per engine: the vocabulary in llguidance's form (built on first
    use, about a second for 50k tokens) and the matchers of requests."""

    def __init__(self, tokenizer, n_vocab: int, end_tokens: List[int]):
        self._tokenizer = tokenizer
        self._n_vocab = n_vocab
        self._end_tokens = list(end_tokens) or [tokenizer.eos_token_id]
        self._ll_tokenizer = None
        self._lock = threading.Lock()  # matchers may be compiled on several threads

    def _lltok(self):
        with self._lock:
            if self._ll_tokenizer is None:
                llg = _llguidance()
                wrapper = llg.TokenizerWrapper(_VocabForLLGuidance(self._tokenizer, self._n_vocab))
                self._ll_tokenizer = llg.LLTokenizer(wrapper, n_vocab=self._n_vocab, eos_token=self._end_tokens)
            return self._ll_tokenizer

    def grammar(self, p: StructuredOutputsParams) -> str:
        if p.json is not None or p.json_object:
            kind, text = "json_schema", _schema_text({"type": "object"} if p.json_object else p.json)
        elif p.regex is not None:
            kind, text = "regex", p.regex
        elif p.choice is not None:
            kind, text = "regex", "|".join(re.escape(c) for c in p.choice)
        else:
            kind, text = "lark", p.grammar
        try:
            return _llguidance().grammar_from(kind, text)
        except (ValueError, TypeError) as e:
            raise StructuredOutputError(f"structured_outputs: {e}") from None

    def matcher(self, p: StructuredOutputsParams) -> "Matcher":
        llg = _llguidance()
        m = llg.LLMatcher(self._lltok(), self.grammar(p))
        if m.is_error():
            raise StructuredOutputError(f"structured_outputs: {m.get_error()}")
        return Matcher(m, self._n_vocab)


def _schema_text(schema: Union[str, dict]) -> str:
    """The schema as llguidance takes it, compact unless it says otherwise
    (", " and ": " between items, no newlines): a small model left free to
    indent can indent forever."""
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as e:
            raise StructuredOutputError(f"structured_outputs.json is not valid JSON: {e}") from None
    if not isinstance(schema, (dict, bool)):
        raise StructuredOutputError(f"structured_outputs.json must be a JSON schema object, got {type(schema).__name__}")
    if isinstance(schema, dict) and "x-guidance" not in schema:
        schema = {**schema, "x-guidance": {"whitespace_flexible": False}}
    return json.dumps(schema)


class Matcher:
    """One completion's place in its grammar."""

    def __init__(self, m, n_vocab: int):
        self._m = m
        self._n_vocab = n_vocab
        self._bitmask = _llguidance().numpy.allocate_token_bitmask(1, n_vocab)

    def copy(self) -> "Matcher":
        return Matcher(self._m.deep_copy(), self._n_vocab)

    def mask(self) -> np.ndarray:
        """The tokens that may come next, one bit each (uint32 words)."""
        _llguidance().numpy.fill_next_token_bitmask(self._m, self._bitmask, 0)
        return self._bitmask[0].view(np.uint32)

    def consume(self, token_ids: List[int]) -> None:
        if not self._m.consume_tokens(list(token_ids)):
            raise StructuredOutputError(f"structured output: the grammar refused tokens {token_ids}: "
                                        f"{self._m.get_error()}")


def as_params(value: Any) -> Optional[StructuredOutputsParams]:
    """StructuredOutputsParams from itself or a dict of its fields."""
    if value is None or isinstance(value, StructuredOutputsParams):
        return value
    if isinstance(value, dict):
        return StructuredOutputsParams(**value)
    raise ValueError(f"structured_outputs must be a StructuredOutputsParams or a dict, got {type(value).__name__}")
