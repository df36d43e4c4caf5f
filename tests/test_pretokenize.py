"""The byte-level BPE pre-tokenizer splits (csrc/pretokenize.cpp) against Hugging
Face tokenizers' own pre-tokenizers (Oniguruma regexes), and the code point
tables they use (csrc/text/unicode_tables.cpp) against unicodedata2.

The reference works on str and reports offsets in characters; ByteLevel also
maps bytes to other characters. So the reference pieces are the slices of the
original text at its offsets. Invalid UTF-8 has no str: the reference sees it
with every bad byte replaced by U+FFFD (a symbol, so "like punctuation"), and
its offsets are mapped back to bytes.
"""
from __future__ import annotations

import functools
import pathlib
import subprocess
import sys

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hearthlm import HearthError, _core

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import text_corpus  # noqa: E402
from helpers.tokenizer_files import DEEPSEEK_CODER_SPLITS, DEEPSEEK_LLM_REGEXES  # noqa: E402

tokenizers = pytest.importorskip("tokenizers")
from tokenizers import Regex  # noqa: E402
from tokenizers import pre_tokenizers as pt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

# As the models' tokenizer.json files spell them (Llama 3; Qwen2 and Qwen's tiktoken).
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = LLAMA3_REGEX.replace(r"\p{N}{1,3}", r"\p{N}")
assert QWEN2_REGEX != LLAMA3_REGEX
# Qwen3.5's tokenizer.json (as llama.cpp quotes it): marks join letters
QWEN35_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_byte_level = pt.ByteLevel(add_prefix_space=False, use_regex=True)


def _isolated(*regexes):
    """A regex list as llama.cpp's llama-vocab.cpp spells it for a family,
    each splitting the pieces of the one before (tokenizers' Sequence of Splits)."""
    return pt.Sequence([pt.Split(Regex(r), behavior="isolated") for r in regexes])


GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
REFERENCE = {
    "gpt2": _byte_level,
    "llama-bpe": pt.Split(Regex(LLAMA3_REGEX), behavior="isolated"),
    "qwen2": pt.Split(Regex(QWEN2_REGEX), behavior="isolated"),
    "qwen35": pt.Split(Regex(QWEN35_REGEX), behavior="isolated"),
    "smollm": pt.Sequence([pt.Digits(individual_digits=True), _byte_level]),
    "deepseek-coder": _isolated(*DEEPSEEK_CODER_SPLITS, r"\p{N}"),
    "deepseek-llm": _isolated(*DEEPSEEK_LLM_REGEXES),
    "falcon": _isolated(r"[\p{P}\$\+<=>\^~\|`]+", GPT2_REGEX, "[0-9][0-9][0-9]"),
}
FAMILIES = list(REFERENCE)

# The llama.cpp tokenizer.ggml.pre names whose regex list equals the family's.
ALIASES = {
    "gpt2": [
        "gpt-2", "default", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
        "gigachat", "a.x-4.0", "mellum", "modern-bert", "roberta-bpe", "jina-es", "jina-de",
        "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code",
    ],
    "llama-bpe": [
        "llama3", "llama-v3", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano",
        "dbrx", "smaug-bpe", "glm4", "chatglm-bpe",
    ],
    "qwen2": ["deepseek-r1-qwen", "megrez", "kormo", "f2llmv2", "stablelm2", "hunyuan", "solar-open", "grok-2"],
    "smollm": ["starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"],
}


def reference_pieces(family: str, text: str) -> list[bytes]:
    return [text[a:b].encode() for _, (a, b) in REFERENCE[family].pre_tokenize_str(text)]


def is_escaped_byte(ch: str) -> bool:
    return 0xDC80 <= ord(ch) <= 0xDCFF  # what surrogateescape makes of a byte it cannot decode


def reference_pieces_of_bytes(family: str, data: bytes) -> list[bytes]:
    # surrogateescape turns each undecodable byte into one character, exactly
    # the bytes next_utf8 calls invalid (test_utf8_decoder_matches_python).
    text = data.decode("utf-8", "surrogateescape")
    stand_in = "".join("\ufffd" if is_escaped_byte(c) else c for c in text)
    byte_offset = [0]
    for c in text:
        byte_offset.append(byte_offset[-1] + (1 if is_escaped_byte(c) else len(c.encode())))
    return [data[byte_offset[a] : byte_offset[b]] for _, (a, b) in REFERENCE[family].pre_tokenize_str(stand_in)]


def mismatch_report(family, cases, ours, reference):
    lines = [f"{family}: {len(cases)} mismatches; first ones:"]
    for case in cases[:5]:
        lines += [f"  input {case!r}", f"    ours {ours(case)!r}", f"    ref  {reference(case)!r}"]
    return "\n".join(lines)


# --- agreement with the reference ---------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_pieces_equal_the_reference_on_every_corpus_line(family):
    lines = text_corpus.lines()
    assert len(lines) >= 5000
    ours = lambda t: _core.testing.pre_tokenize(family, t)  # noqa: E731
    ref = lambda t: reference_pieces(family, t)  # noqa: E731
    bad = [line for line in lines if ours(line) != ref(line)]
    assert not bad, mismatch_report(family, bad, ours, ref)


@pytest.mark.parametrize("family", FAMILIES)
def test_pieces_equal_the_reference_on_the_corpus_as_one_text(family):
    text = text_corpus.as_one_text()
    ours, ref = _core.testing.pre_tokenize(family, text), reference_pieces(family, text)
    assert len(ours) > 50_000
    first_difference = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
    assert ours == ref, f"first difference at piece {first_difference}: {ours[first_difference:][:3]} vs {ref[first_difference:][:3]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_invalid_utf8_bytes_split_like_a_punctuation_character(family):
    cases = text_corpus.invalid_utf8()
    ours = lambda b: _core.testing.pre_tokenize(family, b)  # noqa: E731
    ref = lambda b: reference_pieces_of_bytes(family, b)  # noqa: E731
    bad = [b for b in cases if ours(b) != ref(b)]
    assert not bad, mismatch_report(family, bad, ours, ref)


# Characters (and short sequences) where the families' alternatives compete.
TRICKY = [
    "a", "b", "Z", "é", "中", "ｶ", "ſ", "s", "S", "t", "T", "r", "R", "e", "E", "v", "V", "m", "M",
    "l", "L", "d", "D", "k", "\u212a", "İ", "ß", "\ufb06", "'", "’", "`", "!", ".", "-", "<|", "|>",
    "1", "23", "٣", "½", "²", "①", "Ⅻ", "一", "１", " ", "  ", "\t", "\n", "\r", "\r\n", "\u00a0",
    "\u3000", "\u2028", "\u0085", "\u200b", "\u1680", "\x0b", "\x1c", "\ufeff", "\u0301", "😀",
    "👍🏽", "\u200d", "🇺", "\x00",
]
tricky_text = st.lists(st.sampled_from(TRICKY), max_size=30).map("".join)
tricky_bytes = st.lists(
    st.one_of(
        st.sampled_from(TRICKY).map(str.encode),
        st.sampled_from(text_corpus.INVALID_PIECES),
        st.binary(min_size=1, max_size=3),
    ),
    max_size=20,
).map(b"".join)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=400, deadline=None)
@given(text=tricky_text)
def test_random_tricky_text_splits_like_the_reference(family, text):
    assert _core.testing.pre_tokenize(family, text) == reference_pieces(family, text)


@functools.lru_cache(maxsize=None)
def newer_than_the_reference() -> frozenset[int]:
    """Code points our tables (Unicode 18) call letters or numbers and the
    reference's Oniguruma (Unicode 16 in tokenizers 0.23) does not: letters
    assigned since. On those the two split apart by design."""
    scalars = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    text = "".join(map(chr, scalars))
    ours = _core.testing.unicode_flags(0, 0x10FFFF)
    newer = set()
    for pattern, bit in [(r"\p{L}", 1), (r"\p{N}", 2)]:
        kept = pt.Split(Regex(pattern), behavior="removed").pre_tokenize_str(text)
        unmatched = {ord(c) for piece, _ in kept for c in piece}
        newer |= {cp for cp in unmatched if ours[cp] & bit}
    return frozenset(newer)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=400, deadline=None)
@given(data=tricky_bytes)
def test_random_bytes_split_like_the_reference_with_invalid_bytes_as_punctuation(family, data):
    # random bytes may spell a letter newer than the reference's Unicode
    # (b"a\xd6\x8b": U+058B, a letter since Unicode 18)
    assume(not any(ord(c) in newer_than_the_reference() for c in data.decode("utf-8", "surrogateescape")))
    assert _core.testing.pre_tokenize(family, data) == reference_pieces_of_bytes(family, data)


def test_the_letters_newer_than_the_reference_are_those_of_unicode_17_and_18():
    newer = newer_than_the_reference()
    assert 0x58B in newer and 0x1C89 not in newer  # U+058B: Unicode 18; U+1C89 CYRILLIC TJE: 16.0
    assert 0 < len(newer) < 20_000


def test_contractions_ignore_case_as_oniguruma_does():
    # (?i:...) is simple case folding: ASCII case, and U+017F LONG S is an s.
    # Nothing else: no fullwidth letters, no ligature (U+FB06 st), no dotted İ.
    llama3 = {
        "'Sx": [b"'S", b"x"],
        "'\u017fx": ["'\u017f".encode(), b"x"],
        "'\u017ft": ["'\u017f".encode(), b"t"],
        "'LLx": [b"'LL", b"x"],
        "'lLx": [b"'lL", b"x"],
        "'rEx": [b"'rE", b"x"],
        "'\uff33x": ["'\uff33x".encode()],
        "'\ufb06": ["'\ufb06".encode()],
        "'\u0130x": ["'\u0130x".encode()],
        "'\u212ax": ["'\u212ax".encode()],
    }
    for text, pieces in llama3.items():
        for family in ("llama-bpe", "qwen2"):
            assert reference_pieces(family, text) == pieces, (family, text)
            assert _core.testing.pre_tokenize(family, text) == pieces, (family, text)
    # GPT-2's contractions are lowercase only: "'S" is punctuation, then a word.
    for family in ("gpt2", "smollm"):
        assert reference_pieces(family, "'Sx") == [b"'", b"Sx"]
        assert _core.testing.pre_tokenize(family, "'Sx") == [b"'", b"Sx"]
        assert _core.testing.pre_tokenize(family, "'\u017fx") == [b"'", "\u017fx".encode()]


def test_number_runs_differ_by_family_as_documented():
    assert _core.testing.pre_tokenize("llama-bpe", "1234567") == [b"123", b"456", b"7"]
    assert _core.testing.pre_tokenize("qwen2", "1234567") == [bytes([c]) for c in b"1234567"]
    assert _core.testing.pre_tokenize("gpt2", "a 1234567") == [b"a", b" 1234567"]
    # SmolLM: digits alone, and the space before them is a piece of its own.
    assert _core.testing.pre_tokenize("smollm", "a 12") == [b"a", b" ", b"1", b"2"]


def test_whitespace_before_a_word_joins_it_and_a_trailing_run_stays_whole():
    for family in FAMILIES:
        assert _core.testing.pre_tokenize(family, "a   b  ") == [b"a", b"  ", b" b", b"  "], family
    assert _core.testing.pre_tokenize("llama-bpe", "x \n\n  y") == [b"x", b" \n\n", b" ", b" y"]


# --- properties ---------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_pieces_are_nonempty_and_concatenate_to_the_input(family):
    inputs = [line.encode() for line in text_corpus.lines()] + text_corpus.invalid_utf8() + [b""]
    for data in inputs:
        pieces = _core.testing.pre_tokenize(family, data)
        assert b"".join(pieces) == data
        assert all(pieces)


@pytest.mark.parametrize("family", FAMILIES)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64) | tricky_bytes)
def test_pieces_of_any_bytes_are_nonempty_and_concatenate_to_them(family, data):
    pieces = _core.testing.pre_tokenize(family, data)
    assert b"".join(pieces) == data and all(pieces)


def test_str_and_its_utf8_bytes_split_alike():
    text = text_corpus.as_one_text()
    for family in FAMILIES:
        assert _core.testing.pre_tokenize(family, text) == _core.testing.pre_tokenize(family, text.encode())


def test_empty_text_has_no_pieces():
    assert all(_core.testing.pre_tokenize(family, "") == [] for family in FAMILIES)


# --- names ----------------------------------------------------------------------------


def test_each_family_name_is_its_own_canonical_name():
    assert [_core.testing.pre_tokenizer_family(f) for f in FAMILIES] == FAMILIES


@pytest.mark.parametrize("family", FAMILIES)
def test_aliases_select_their_family_and_split_alike(family):
    text = text_corpus.as_one_text()[:20_000]
    expected = _core.testing.pre_tokenize(family, text)
    for alias in ALIASES.get(family, []):
        assert _core.testing.pre_tokenizer_family(alias) == family, alias
        assert _core.testing.pre_tokenize(alias, text) == expected, alias


def test_unknown_name_raises_hearth_error_naming_it_and_the_supported_ones():
    for name in ["llama", "GPT2", "qwen2 ", "", "deepseek-v3"]:
        with pytest.raises(HearthError) as err:
            _core.testing.pre_tokenize(name, "text")
        message = str(err.value)
        assert f"'{name}'" in message
        assert all(f in message for f in FAMILIES)
    with pytest.raises(HearthError, match="'nope'"):
        _core.testing.pre_tokenizer_family("nope")


def test_text_of_another_type_is_a_type_error():
    with pytest.raises(TypeError):
        _core.testing.pre_tokenize("gpt2", 12)


# --- UTF-8 and the Unicode tables ---------------------------------------------------


def test_utf8_decoder_matches_python_on_valid_and_invalid_bytes():
    cases = text_corpus.invalid_utf8() + [text_corpus.as_one_text().encode()]
    cases += [bytes([b]) for b in range(256)] + [bytes([0xE0 | (b >> 4), 0x80 | (b & 0xF), 0x80]) for b in range(256)]
    for data in cases:
        text = data.decode("utf-8", "surrogateescape")
        expected = [(-1, 1) if is_escaped_byte(c) else (ord(c), len(c.encode())) for c in text]
        assert _core.testing.utf8_characters(data) == expected, data[:40]


def test_utf8_encoder_writes_every_scalar_value_and_replaces_the_rest():
    scalars = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    assert _core.testing.utf8_encode(scalars) == "".join(map(chr, scalars)).encode()
    assert _core.testing.utf8_encode([0xD800, 0xDFFF, 0x110000, 0xFFFFFFFF]) == "\ufffd".encode() * 4


def expected_flags() -> bytes:
    ud = pytest.importorskip("unicodedata2")
    white_space = {*range(0x9, 0xE), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}
    bits = {"L": 1, "N": 2}
    return bytes(bits.get(ud.category(chr(cp))[0], 0) | (4 if cp in white_space else 0) for cp in range(0x110000))


def test_unicode_classes_agree_with_unicodedata2_on_every_code_point():
    ours, expected = _core.testing.unicode_flags(0, 0x10FFFF), expected_flags()
    bad = [hex(cp) for cp in range(0x110000) if ours[cp] != expected[cp]]
    assert not bad, f"{len(bad)} code points differ, first {bad[:10]}"


def test_unicode_classes_contain_the_reference_regex_classes():
    # Oniguruma in `tokenizers` carries an older Unicode (16.0 for 0.23): each
    # of its letters and numbers must be one here too; ours may add newer ones.
    scalars = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF]
    text = "".join(map(chr, scalars))
    ours = _core.testing.unicode_flags(0, 0x10FFFF)
    for pattern, bit in [(r"\p{L}", 1), (r"\p{N}", 2), (r"\s", 4)]:
        kept = pt.Split(Regex(pattern), behavior="removed").pre_tokenize_str(text)
        unmatched = {ord(c) for piece, _ in kept for c in piece}
        reference = {cp for cp in scalars if cp not in unmatched}
        mine = {cp for cp in scalars if ours[cp] & bit}
        assert reference <= mine, (pattern, sorted(hex(cp) for cp in reference - mine)[:10])
        if bit == 4:
            assert reference == mine


def test_unicode_tables_are_from_unicodedata2s_version():
    ud = pytest.importorskip("unicodedata2")
    assert _core.testing.unicode_version() == ud.unidata_version
    header = (ROOT / "csrc" / "text" / "unicode_tables.cpp").read_text().splitlines()[0]
    assert f"Unicode {ud.unidata_version}" in header


def test_generator_reproduces_the_committed_tables_byte_for_byte(tmp_path):
    pytest.importorskip("unicodedata2")
    out = tmp_path / "unicode_tables.cpp"
    subprocess.run([sys.executable, str(ROOT / "csrc" / "text" / "gen_unicode_tables.py"), "--output", str(out)], check=True)
    assert out.read_bytes() == (ROOT / "csrc" / "text" / "unicode_tables.cpp").read_bytes()


def test_command_r_is_refused_until_its_emoji_sequences_are_right():
    """Its ids differ from tokenizers' on emoji joined with U+200D (ZWJ): a
    clear refusal naming why, not silently different ids."""
    with pytest.raises(HearthError, match="command-r.*refused until it is right.*U\\+200D"):
        _core.testing.pre_tokenize("command-r", "a")
