"""Tokenizer export: the ``tokenizer.*`` GGUF keys, chosen as llama.cpp's converter does.

Sources, in order:

* ``tokenizer.model`` (SentencePiece; for ``llama``) -> ``tokenizer.ggml.model = llama``
  with tokens, scores and token types.  The protobuf is parsed here (three
  fields of ``ModelProto.pieces``), so ``sentencepiece`` is not needed.
* ``tokenizer.json``: byte-level BPE -> ``gpt2`` with tokens, types, merges
  and ``tokenizer.ggml.pre`` (see :func:`detect_pre`); a SentencePiece-style
  BPE (``byte_fallback``, as TinyLlama ships it without ``tokenizer.model``)
  -> ``llama``.
* ``qwen.tiktoken`` (Qwen v1): ``gpt2``, the merges recovered from the ranks.

Special token ids, ``add_bos_token`` / ``add_eos_token`` and the chat
template come from ``gguf.SpecialVocab`` (tokenizer.json, tokenizer_config.json,
config.json, chat_template.jinja), the class llama.cpp's converter uses.
The token list is padded to the embedding's rows with ``[PAD{i}]`` tokens of
type UNUSED.
"""

from __future__ import annotations

import base64
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import Path

import gguf
from gguf import TokenType

from .errors import ConvertError

log = logging.getLogger("hearth-convert")

TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "qwen.tiktoken")


@dataclass
class Vocab:
    model: str  # tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    pre: str | None
    tokens: list[str | bytes]
    toktypes: list[int]
    scores: list[float] | None = None
    merges: list[str] = field(default_factory=list)
    special: gguf.SpecialVocab | None = None
    add_space_prefix: bool | None = None
    chat_template: str | None = None
    source: str = ""

    def add_to(self, w: gguf.GGUFWriter) -> None:
        w.add_tokenizer_model(self.model)
        if self.pre is not None:
            w.add_tokenizer_pre(self.pre)
        w.add_token_list(self.tokens)
        if self.scores is not None:
            w.add_token_scores(self.scores)
        w.add_token_types(self.toktypes)
        if self.special is not None:
            self.special.merges = self.merges
            self.special.add_to_gguf(w, quiet=True)
        elif self.merges:
            w.add_token_merges(self.merges)
        if self.add_space_prefix is not None:
            w.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template is not None and (self.special is None or self.special.chat_template is None):
            w.add_chat_template(self.chat_template)


def find_tokenizer(folder: Path, arch: str) -> str | None:
    """Which file the vocab comes from, or None when the folder has none."""
    if arch == "llama" and (folder / "tokenizer.model").is_file():
        return "tokenizer.model"
    if (folder / "tokenizer.json").is_file():
        return "tokenizer.json"
    if (folder / "qwen.tiktoken").is_file():
        return "qwen.tiktoken"
    if (folder / "tokenizer.model").is_file():
        return "tokenizer.model"
    return None


def load_vocab(folder: Path, arch: str, n_vocab: int | None) -> Vocab | None:
    """Read the folder's tokenizer; ``n_vocab`` is the embedding's row count (None: as many as tokens)."""
    source = find_tokenizer(folder, arch)
    if source is None:
        return None
    if source == "tokenizer.model":
        vocab = _sentencepiece_vocab(folder, n_vocab)
    elif source == "tokenizer.json":
        vocab = _tokenizer_json_vocab(folder, arch, n_vocab)
    else:
        vocab = _tiktoken_vocab(folder, n_vocab)
    vocab.source = source
    if arch in ("glm4", "chatglm"):
        _set_glm_special_tokens(vocab)
    config = _read_json(folder / "tokenizer_config.json") or {}
    if arch == "llama" and isinstance(config.get("add_prefix_space"), bool):
        vocab.add_space_prefix = config["add_prefix_space"]
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        vocab.chat_template = jinja.read_text(encoding="utf-8")
    return vocab


#: GLM-4's turn markers, as llama.cpp's converter records them: the model ends
#: its answer with <|user|> (end of turn) or hands over to a tool with
#: <|observation|> (end of message); [gMASK] opens every prompt.
_GLM_SPECIALS = {"eos": "<|endoftext|>", "unk": "<|endoftext|>", "eot": "<|user|>", "eom": "<|observation|>",
                 "bos": "[gMASK]"}


def _set_glm_special_tokens(vocab: Vocab) -> None:
    if vocab.special is None:
        return
    ids = {t: i for i, t in enumerate(vocab.tokens) if isinstance(t, str)}
    for kind, text in _GLM_SPECIALS.items():
        if text in ids:
            vocab.special._set_special_token(kind, ids[text])


def _read_json(path: Path):
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ConvertError(f"{path}: cannot read it as JSON: {e}") from None


def _looks_special(text: str) -> bool:
    # as llama.cpp's does_token_look_special: some releases mark control tokens as not special
    return (text in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (text.startswith("<|") and text.endswith("|>"))
            or (text.startswith("<｜") and text.endswith("｜>"))
            or (text.startswith("<unused") and text.endswith(">")))


def _check_size(n_tokens: int, n_vocab: int | None, source: str) -> int:
    if n_vocab is None:
        return n_tokens
    if n_tokens > n_vocab:
        raise ConvertError(f"{source} has {n_tokens} tokens but the model's embedding has only {n_vocab} rows")
    return n_vocab


def _pad(tokens: list, toktypes: list, scores: list | None, size: int) -> None:
    for i in range(len(tokens), size):
        tokens.append(f"[PAD{i}]")
        toktypes.append(TokenType.UNUSED)
        if scores is not None:
            scores.append(-1000.0)


# --- SentencePiece ---------------------------------------------------------

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """(field number, wire type, value) of a protobuf message, values raw."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos:pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt}")
        if pos > len(buf):
            raise ValueError("truncated message")
        yield num, wt, val


@dataclass
class SentencePieceModel:
    pieces: list[tuple[str, float, int]]  # (piece, score, sentencepiece type)
    normalizer: str = ""                  # NormalizerSpec.name ("identity", "nmt_nfkc", ...)
    add_dummy_prefix: bool = True         # protobuf defaults
    remove_extra_whitespaces: bool = True


def read_sentencepiece(path: Path) -> SentencePieceModel:
    """The pieces and the normalizer settings of a SentencePiece ModelProto."""
    try:
        data = path.read_bytes()
        model = SentencePieceModel(pieces=[])
        for num, wt, val in _fields(data):
            if num == 1 and wt == 2:  # repeated SentencePiece pieces = 1
                piece, score, ptype = "", 0.0, 1
                for n2, w2, v2 in _fields(val):
                    if n2 == 1 and w2 == 2:
                        piece = v2.decode("utf-8")
                    elif n2 == 2 and w2 == 5:
                        (score,) = struct.unpack("<f", v2)
                    elif n2 == 3 and w2 == 0:
                        ptype = v2
                model.pieces.append((piece, score, ptype))
            elif num == 3 and wt == 2:  # NormalizerSpec normalizer_spec = 3
                for n2, w2, v2 in _fields(val):
                    if n2 == 1 and w2 == 2:
                        model.normalizer = v2.decode("utf-8")
                    elif n2 == 3 and w2 == 0:
                        model.add_dummy_prefix = bool(v2)
                    elif n2 == 4 and w2 == 0:
                        model.remove_extra_whitespaces = bool(v2)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ConvertError(f"{path}: not a readable SentencePiece model: {e}") from None
    if not model.pieces:
        raise ConvertError(f"{path}: not a SentencePiece model (no pieces)")
    return model


# SentencePiece piece types -> GGUF token types. llama.cpp's converter makes
# USER_DEFINED pieces NORMAL; we keep them USER_DEFINED, because sentencepiece
# matches them in the text as whole pieces (and llama.cpp's tokenizer does
# the same with USER_DEFINED tokens), which a NORMAL piece is not.
_SPM_TYPES = {2: TokenType.UNKNOWN, 3: TokenType.CONTROL, 4: TokenType.USER_DEFINED, 5: TokenType.UNUSED,
              6: TokenType.BYTE}


def _sentencepiece_vocab(folder: Path, n_vocab: int | None) -> Vocab:
    spm = read_sentencepiece(folder / "tokenizer.model")
    pieces = spm.pieces
    if spm.normalizer not in ("", "identity"):
        log.warning("tokenizer.model: normalizer %r is not applied by llama.cpp nor hearth (only 'identity' "
                    "tokenizes exactly as sentencepiece)", spm.normalizer)
    if spm.remove_extra_whitespaces:
        log.warning("tokenizer.model: remove_extra_whitespaces is not applied by llama.cpp nor hearth: "
                    "runs of spaces tokenize differently from sentencepiece")
    size = _check_size(len(pieces), n_vocab, "tokenizer.model")
    tokens: list[str | bytes] = [f"[PAD{i}]" for i in range(size)]
    scores = [-10000.0] * size
    toktypes: list[int] = [TokenType.UNUSED] * size
    for i, (piece, score, ptype) in enumerate(pieces):
        tokens[i], scores[i], toktypes[i] = piece, score, _SPM_TYPES.get(ptype, TokenType.NORMAL)

    added = _read_json(folder / "added_tokens.json") or {}
    for text, tid in added.items():
        if isinstance(tid, int) and 0 <= tid < size:
            tokens[tid], scores[tid], toktypes[tid] = text, -1000.0, TokenType.USER_DEFINED
    config = _read_json(folder / "tokenizer_config.json") or {}
    for tid_s, data in (config.get("added_tokens_decoder") or {}).items():
        tid, text = int(tid_s), data.get("content")
        if not isinstance(text, str) or not 0 <= tid < size:
            continue
        if data.get("special") or _looks_special(text):
            toktypes[tid] = TokenType.CONTROL
        else:
            text = text.replace("\u2581", " ")
            toktypes[tid] = TokenType.USER_DEFINED
        tokens[tid], scores[tid] = text, -1000.0
    special = gguf.SpecialVocab(folder, n_vocab=len(tokens))
    return Vocab("llama", "default", tokens, toktypes, scores=scores, special=special,
                 add_space_prefix=spm.add_dummy_prefix)


# --- tokenizer.json --------------------------------------------------------

def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


_BYTE_CHARS = _bytes_to_unicode()


def token_bytes_to_string(b: bytes) -> str:
    return "".join(_BYTE_CHARS[x] for x in b)


# Pre-tokenizer regexes as the tokenizers' own tokenizer.json files spell them.
_QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_QWEN35_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
              r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _pretokenizer_steps(pre: dict | None) -> list[dict]:
    if not pre:
        return []
    if pre.get("type") == "Sequence":
        return [s for p in pre.get("pretokenizers", []) for s in _pretokenizer_steps(p)]
    return [pre]


# DeepSeek's Chinese / Japanese / Korean runs, and Coder's splits before its digits
_CJK = "[一-龥ࠀ-一가-퟿]+"
_DEEPSEEK_CODER_SPLITS = ("[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", _CJK)


def detect_pre(tokenizer_json: dict) -> tuple[str, str]:
    """``tokenizer.ggml.pre`` for a byte-level BPE tokenizer.json, and why.

    llama.cpp hashes the token ids of a test string; we read the
    pre-tokenizer itself, which names the split directly:

    * a ``Split`` with Qwen2's regex (``\\p{N}``: one digit per piece) -> ``qwen2``
    * a ``Split`` with Llama 3's regex (``\\p{N}{1,3}``) -> ``llama-bpe``
    * a ``Split`` with Qwen3.5's regex (marks join letters) -> ``qwen35``
    * ``Digits(individual_digits)`` followed by the GPT-2 ``ByteLevel`` regex
      (SmolLM / StarCoder style) -> ``smollm``
    * the GPT-2 ``ByteLevel`` regex alone -> ``gpt-2`` (llama.cpp's spelling)
    * DeepSeek Coder's splits (newline, letters, punctuation, CJK) then one
      digit per piece -> ``deepseek-coder``
    * DeepSeek LLM's five splits (its own letter and punctuation classes,
      trailing spaces, CJK) then digit runs -> ``deepseek-llm``
    * ``Punctuation``, the GPT-2 ``ByteLevel`` regex, digit runs, then three
      digits a piece (Falcon) -> ``falcon``
    * anything else -> ``default``, with a warning.
    """
    steps = _pretokenizer_steps(tokenizer_json.get("pre_tokenizer"))
    regexes = [s.get("pattern", {}).get("Regex") for s in steps if s.get("type") == "Split"]
    digits = any(s.get("type") == "Digits" and s.get("individual_digits") for s in steps)
    digit_runs = any(s.get("type") == "Digits" and not s.get("individual_digits") for s in steps)
    bytelevel_regex = any(s.get("type") == "ByteLevel" and s.get("use_regex", True) for s in steps)
    if regexes == [_QWEN2_RE]:
        return "qwen2", "Split with the Qwen2 regex"
    if regexes == [_LLAMA3_RE]:
        return "llama-bpe", "Split with the Llama 3 regex"
    if regexes == [_QWEN35_RE]:
        return "qwen35", "Split with the Qwen3.5 regex"
    if regexes == list(_DEEPSEEK_CODER_SPLITS) and digits and not bytelevel_regex:
        return "deepseek-coder", "DeepSeek Coder's splits + Digits(individual_digits)"
    if (len(regexes) == 5 and regexes[0] == "[\r\n]" and regexes[3] == r"\s+$" and regexes[4] == _CJK
            and digit_runs and not bytelevel_regex):
        return "deepseek-llm", "DeepSeek LLM's splits + Digits"
    punctuation = any(s.get("type") == "Punctuation" for s in steps)
    if punctuation and bytelevel_regex and digit_runs and regexes == ["[0-9][0-9][0-9]"]:
        return "falcon", "Punctuation + ByteLevel regex + Digits + three-digit Split"
    if not regexes and digits and bytelevel_regex:
        return "smollm", "Digits(individual_digits) + ByteLevel regex"
    if not regexes and not digits and bytelevel_regex:
        return "gpt-2", "ByteLevel regex"
    log.warning("tokenizer.json: pre-tokenizer not recognised (%s); writing tokenizer.ggml.pre = 'default'",
                json.dumps(tokenizer_json.get("pre_tokenizer"))[:200])
    return "default", "not recognised"


def _tokenizer_json_vocab(folder: Path, arch: str, n_vocab: int | None) -> Vocab:
    path = folder / "tokenizer.json"
    tj = _read_json(path)
    model = (tj or {}).get("model") or {}
    if model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        raise ConvertError(f"{path}: tokenizer model {model.get('type')!r} is not supported (only BPE)")
    vocab: dict[str, int] = dict(model["vocab"])
    added = {}
    for a in tj.get("added_tokens", []):
        vocab[a["content"]] = a["id"]
        added[a["id"]] = a
    if not vocab:
        raise ConvertError(f"{path}: empty vocabulary")
    size = _check_size(max(vocab.values()) + 1, n_vocab, "tokenizer.json")
    reverse = {i: t for t, i in vocab.items()}
    spm_style = bool(model.get("byte_fallback"))

    tokens: list[str | bytes] = []
    toktypes: list[int] = []
    scores: list[float] | None = [] if spm_style else None
    for i in range(size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            toktypes.append(TokenType.UNUSED)
            if scores is not None:
                scores.append(-1000.0)
            continue
        text = reverse[i]
        if i in added:
            if added[i].get("special") or _looks_special(text):
                ttype = TokenType.CONTROL
            else:
                text = text.replace("\u2581", " ")
                ttype = TokenType.USER_DEFINED
        elif spm_style and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
            ttype = TokenType.BYTE
        else:
            ttype = TokenType.NORMAL
        tokens.append(text)
        toktypes.append(ttype)
        if scores is not None:
            # tokenizer.json keeps no SentencePiece scores; for a BPE model the
            # piece order is the merge order, so -id ranks them the same way
            scores.append(0.0 if ttype != TokenType.NORMAL else -float(i))

    special = gguf.SpecialVocab(folder, load_merges=not spm_style, n_vocab=len(tokens))
    if spm_style:
        return Vocab("llama", "default", tokens, toktypes, scores=scores, special=special)
    pre, why = detect_pre(tj)
    log.info("tokenizer.ggml.pre = %s (%s)", pre, why)
    merges = special.merges
    if not merges:
        raise ConvertError(f"{path}: byte-level BPE without merges")
    return Vocab("gpt2", pre, tokens, toktypes, merges=merges, special=special)


# --- qwen.tiktoken (Qwen v1) ------------------------------------------------

#: tokenization_qwen.py's special tokens, numbered after the ranks
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)]


def _bpe(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best = None
        best_rank = max_rank
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < best_rank:
                best, best_rank = i, r
        if best is None:
            return parts
        parts[best:best + 2] = [parts[best] + parts[best + 1]]


def read_tiktoken(path: Path) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    try:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                tok, rank = line.split()
                ranks[base64.b64decode(tok)] = int(rank)
    except (OSError, ValueError) as e:
        raise ConvertError(f"{path}: not a tiktoken rank file: {e}") from None
    return ranks


def _tiktoken_vocab(folder: Path, n_vocab: int | None) -> Vocab:
    path = folder / "qwen.tiktoken"
    ranks = read_tiktoken(path)
    vocab: dict[int, str] = {}
    merges: list[str] = []
    for tok, rank in ranks.items():
        vocab[rank] = token_bytes_to_string(tok)
        if len(tok) == 1:
            continue
        parts = _bpe(ranks, tok, rank)
        if len(parts) != 2:
            raise ConvertError(f"{path}: cannot recover the merge for token rank {rank}")
        merges.append(token_bytes_to_string(parts[0]) + " " + token_bytes_to_string(parts[1]))
    specials = {len(ranks) + i: t for i, t in enumerate(QWEN_SPECIALS)}
    if n_vocab is not None:
        specials = {i: t for i, t in specials.items() if i < n_vocab}
    size = _check_size(max([*vocab, *specials]) + 1, n_vocab, "qwen.tiktoken")
    tokens: list[str | bytes] = []
    toktypes: list[int] = []
    for i in range(size):
        if i in specials:
            tokens.append(specials[i])
            toktypes.append(TokenType.CONTROL)
        elif i in vocab:
            tokens.append(vocab[i])
            toktypes.append(TokenType.NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            toktypes.append(TokenType.UNUSED)
    special = gguf.SpecialVocab(folder, load_merges=False, n_vocab=len(tokens))
    eot = len(ranks)  # <|endoftext|>
    if not special.special_token_ids and eot < size:
        special._set_special_token("bos", eot)
        special._set_special_token("eos", eot)
    if eot < size:
        special._set_special_token("unk", eot)
    # the Qwen2 regex is Qwen v1's pattern, digit by digit
    return Vocab("gpt2", "qwen2", tokens, toktypes, merges=merges, special=special)
