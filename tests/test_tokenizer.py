"""The C++ tokenizers against the reference libraries: token ids equal on a
corpus of varied lines (tests/helpers/text_corpus.py), decode equal, round trips,
streaming that never breaks a character, and clear errors.

References: `sentencepiece` for SentencePiece models, Hugging Face
`tokenizers` for tokenizer.json, `tiktoken` for qwen.tiktoken, llama.cpp
(llama-cpp-python, where installed) for the real SmolLM2 file. Small
tokenizers trained here make the tests run without HEARTH_TEST_MODELS too.
"""
from __future__ import annotations

import pathlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from helpers import text_corpus
from helpers import tokenizer_files as tf
from conftest import SMOLLM2_DIR, SMOLLM2_GGUF, convert_vocab_only
from hearthlm import LLM, HearthError, _core

LINES = text_corpus.lines()


def mismatches(texts, ours, theirs, limit=3):
    bad = []
    for t in texts:
        a, b = ours(t), theirs(t)
        if a != b:
            bad.append((t, a, b))
            if len(bad) >= limit:
                break
    return bad


def assert_same_ids(texts, ours, theirs, what):
    bad = mismatches(texts, ours, theirs)
    assert not bad, f"{what}: ids differ on {len(bad)}+ texts, first: " + "; ".join(
        f"{t!r}: hearth {a[:40]} vs reference {b[:40]}" for t, a, b in bad)


# ---------------------------------------------------------------------------
# the tokenizers under test, each with its reference
# ---------------------------------------------------------------------------

class Case:
    """A GGUF vocabulary and its reference. encode(text) with
    parse_special=True and/or parse_special=False as the reference defines."""

    def __init__(self, name, path, kind, ref):
        self.name, self.path, self.kind, self.ref = name, path, kind, ref
        self.llm = LLM(path, vocab_only=True)

    def ref_encode(self, text, parse_special):
        if self.kind == "spm":
            assert not parse_special  # sentencepiece never reads control tokens from text
            return self.ref.encode(text)
        if self.kind == "hf":
            assert parse_special  # tokenizers always matches its added tokens
            return self.ref.encode(text, add_special_tokens=False).ids
        if self.kind == "tiktoken":
            return self.ref.encode(text, allowed_special="all") if parse_special else self.ref.encode_ordinary(text)
        if self.kind == "llama.cpp":
            data = text if isinstance(text, bytes) else text.encode("utf-8")
            return self.ref.tokenize(data, add_bos=False, special=parse_special)
        raise AssertionError(self.kind)

    def parse_modes(self):
        return {"spm": [False], "hf": [True], "tiktoken": [True, False], "llama.cpp": [True, False]}[self.kind]

    def ref_decode(self, ids, special):
        if self.kind == "spm":
            return self.ref.decode(ids)
        if self.kind == "hf":
            return self.ref.decode(ids, skip_special_tokens=not special)
        if self.kind == "tiktoken":
            return self.ref.decode(ids)
        # llama.cpp's token_to_piece token by token (llama-cpp-python's own
        # detokenize drops pieces over 32 bytes and strips a space after BOS)
        import ctypes
        import llama_cpp
        buf = ctypes.create_string_buffer(1024)
        out = b""
        for i in ids:
            n = llama_cpp.llama_token_to_piece(self.ref._model.vocab, i, buf, 1024, 0, special)
            out += buf.raw[:n]
        return out.decode("utf-8", errors="replace")


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("trained-tokenizers")


def _trained_spm(trained_dir):
    spm = pytest.importorskip("sentencepiece")
    folder = tf.train_sentencepiece(trained_dir / "spm-trained", LINES)
    gguf = convert_vocab_only(folder, trained_dir)
    return Case("spm-trained", gguf, "spm", spm.SentencePieceProcessor(model_file=str(folder / "tokenizer.model")))


def _trained_bpe(trained_dir, family):
    tokenizers = pytest.importorskip("tokenizers")
    folder = tf.train_bpe(trained_dir / f"bpe-{family}", LINES, family)
    gguf = convert_vocab_only(folder, trained_dir)
    return Case(f"bpe-{family}", gguf, "hf", tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json")))


def _models_dir():
    import os
    d = os.environ.get("HEARTH_TEST_MODELS")
    if not d or not pathlib.Path(d).is_dir():
        pytest.skip("HEARTH_TEST_MODELS is not set (CI sets it to ../shared/models)")
    return pathlib.Path(d)


def _llama2(trained_dir):
    spm = pytest.importorskip("sentencepiece")
    src = _models_dir() / "llama2-tokenizer"
    gguf = convert_vocab_only(src, trained_dir / "llama2")
    return Case("llama2", gguf, "spm", spm.SentencePieceProcessor(model_file=str(src / "tokenizer.model")))


def _qwen2(trained_dir):
    tokenizers = pytest.importorskip("tokenizers")
    src = _models_dir() / "qwen2-tokenizer"
    gguf = convert_vocab_only(src, trained_dir / "qwen2")
    return Case("qwen2", gguf, "hf", tokenizers.Tokenizer.from_file(str(src / "tokenizer.json")))


def _qwen_tiktoken(trained_dir):
    pytest.importorskip("tiktoken")
    src = _models_dir() / "qwen-tiktoken"
    gguf = convert_vocab_only(src, trained_dir / "qwen-tiktoken")
    return Case("qwen-tiktoken", gguf, "tiktoken", tf.tiktoken_encoding(src / "qwen.tiktoken"))


def _smollm2(trained_dir):
    tokenizers = pytest.importorskip("tokenizers")
    d = _models_dir() / SMOLLM2_DIR
    return Case("smollm2", d / SMOLLM2_GGUF, "hf", tokenizers.Tokenizer.from_file(str(d / "hf" / "tokenizer.json")))


def _smollm2_llama_cpp(trained_dir):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    path = _models_dir() / SMOLLM2_DIR / SMOLLM2_GGUF
    return Case("smollm2-llama.cpp", path, "llama.cpp",
                llama_cpp.Llama(str(path), vocab_only=True, verbose=False))


CASES = {
    "spm-trained": _trained_spm,
    **{f"bpe-{f}": (lambda fam: lambda d: _trained_bpe(d, fam))(f) for f in tf.BPE_FAMILIES},
    "llama2": _llama2,
    "qwen2": _qwen2,
    "qwen-tiktoken": _qwen_tiktoken,
    "smollm2": _smollm2,
    "smollm2-llama.cpp": _smollm2_llama_cpp,
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, trained_dir):
    return CASES[request.param](trained_dir)


# ---------------------------------------------------------------------------
# encode
# ---------------------------------------------------------------------------

def test_corpus_is_large_and_varied():
    assert len(LINES) >= 5000
    joined = "".join(LINES)
    for probe in ["的", "體", "の", "한", "ع", "\u200d", "\t", "  ", "\n\n", "<|im_start|>", "½"]:
        assert probe in joined, probe


@pytest.mark.parametrize("family", list(tf.BPE_FAMILIES))
def test_converter_names_each_trained_family_by_its_pre_tokenizer(family, trained_dir):
    """hearth-convert reads the family from the tokenizer.json pre-tokenizer
    (the ids test below would also pass with a wrong name only by chance)."""
    gguf = pytest.importorskip("gguf")
    path = _trained_bpe(trained_dir, family).path
    field = gguf.GGUFReader(str(path)).fields["tokenizer.ggml.pre"]
    assert bytes(field.parts[-1]).decode() == tf.BPE_FAMILIES[family]


def test_ids_equal_the_reference_on_every_corpus_line(case):
    for parse_special in case.parse_modes():
        assert_same_ids(LINES, lambda t: case.llm.tokenize(t, add_special=False, parse_special=parse_special),
                        lambda t: case.ref_encode(t, parse_special), f"{case.name} parse_special={parse_special}")


def test_ids_equal_the_reference_on_the_corpus_as_one_text(case):
    text = text_corpus.as_one_text()
    for parse_special in case.parse_modes():
        ours = case.llm.tokenize(text, add_special=False, parse_special=parse_special)
        theirs = case.ref_encode(text, parse_special)
        assert len(ours) > 10000
        if ours != theirs:
            i = next(i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b)
            pytest.fail(f"{case.name}: first difference at token {i}: {ours[i - 3:i + 3]} vs {theirs[i - 3:i + 3]}")


TRICKY = st.lists(st.sampled_from(list(
    "aZé 1٣½\t\n\r'sSlLdD.,!?-_()<>|/\\$€漢字かなカナ한글ال😀\u200d\u00a0\u3000\u2028ſ") +
    ["<|im_start|>", "<|endoftext|>", "<s>", "</s>", "<sep>", "'ll", "'S", "  ", "\r\n", "123", "0.5"]),
    max_size=40).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=TRICKY)
def test_ids_equal_the_reference_on_random_tricky_text(case, text):
    for parse_special in case.parse_modes():
        assert case.llm.tokenize(text, add_special=False, parse_special=parse_special) == \
            case.ref_encode(text, parse_special)


def test_add_special_adds_what_the_vocabulary_asks_for(case):
    tok = case.llm
    meta = tok.metadata
    plain = tok.tokenize("Hello world", add_special=False)
    full = tok.tokenize("Hello world", add_special=True)
    spm = meta["tokenizer.ggml.model"] == "llama"
    if meta.get("tokenizer.ggml.add_bos_token", spm):  # llama.cpp's default: BOS for SentencePiece
        bos = meta.get("tokenizer.ggml.bos_token_id", 1)
        assert full == [bos] + plain
    else:
        assert full == plain
    if case.kind == "spm":
        assert full == [case.ref.bos_id()] + case.ref.encode("Hello world")


def test_special_token_strings_are_text_without_parse_special(case):
    controls = [i for i, t in enumerate(case.llm.metadata["tokenizer.ggml.token_type"]) if t == 3]
    text = case.llm.detokenize_bytes([controls[-1]], special=True).decode()
    as_text = case.llm.tokenize("a" + text + "b", add_special=False, parse_special=False)
    assert controls[-1] not in as_text
    assert case.llm.detokenize(as_text) == "a" + text + "b"
    if case.kind != "spm":  # sentencepiece has no parse_special: llama.cpp's rule is tested elsewhere
        parsed = case.llm.tokenize("a" + text + "b", add_special=False, parse_special=True)
        assert controls[-1] in parsed


def test_invalid_utf8_bytes(case):
    """SentencePiece reads each invalid byte as U+FFFD (as sentencepiece
    does); byte-level BPE keeps every byte (as tiktoken does), so decoding
    gives the bytes back, except a byte the vocabulary has no token for,
    which is read as U+FFFD (as llama.cpp reads invalid bytes)."""
    tokens = case.llm.metadata["tokenizer.ggml.tokens"]
    if case.kind != "spm":
        have = {b for b in range(256) if _byte_level_char(b) in set(tokens)}
    for data in text_corpus.invalid_utf8():
        ids = case.llm.tokenize(data, add_special=False, parse_special=False)
        if case.kind == "spm":
            assert ids == case.ref.encode(data), data
            continue
        want = b"".join(bytes([b]) if b in have else "\ufffd".encode() for b in data)
        assert case.llm.detokenize_bytes(ids) == want, data
        if case.kind == "llama.cpp" and want.decode("utf-8", errors="replace").encode() == want:
            # every invalid byte lacked a token: llama.cpp reads them as U+FFFD too
            assert ids == case.ref.tokenize(data, add_bos=False, special=False), data


def _byte_level_char(b: int) -> str:
    """GPT-2's byte-level spelling of a byte."""
    printable = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    if b in printable:
        return chr(b)
    return chr(256 + [x for x in range(256) if x not in printable].index(b))


# ---------------------------------------------------------------------------
# decode
# ---------------------------------------------------------------------------

def test_decode_of_encode_gives_the_text_back(case):
    # (SentencePiece with parse_special puts the dummy-prefix space after a
    # control token, as llama.cpp does: not a round trip, so text it is)
    parse = case.kind != "spm"
    bad = [t for t in LINES if case.llm.detokenize(case.llm.tokenize(t, add_special=False, parse_special=parse),
                                                   special=True) != t]
    assert not bad, bad[:3]


def test_decode_equals_the_reference_on_encoded_lines(case):
    specials = {"spm": [False], "tiktoken": [True]}.get(case.kind, [True, False])
    for special in specials:
        bad = []
        for t in LINES[::7]:
            ids = case.llm.tokenize(t, add_special=True, parse_special=case.kind != "spm")
            if case.llm.detokenize(ids, special=special) != case.ref_decode(ids, special):
                bad.append(t)
        assert not bad, (special, bad[:3])


def test_decode_equals_the_reference_on_random_ids(case):
    rng = np.random.default_rng(5)
    n = case.llm.n_vocab
    for _ in range(300):
        ids = [int(i) for i in rng.integers(0, n, size=int(rng.integers(1, 12)))]
        special = case.kind != "spm"  # sentencepiece shows no control tokens
        ours = case.llm.detokenize_bytes(ids, special=special)
        if case.kind == "spm":
            # sentencepiece replaces invalid bytes one by one, Python by
            # maximal subparts: compare where the bytes are valid UTF-8
            try:
                text = ours.decode("utf-8")
            except UnicodeDecodeError:
                continue
            assert text == case.ref_decode(ids, special), ids
        else:
            assert ours.decode("utf-8", errors="replace") == case.ref_decode(ids, special), ids


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_streaming_pieces_concatenate_to_the_decoded_text(case, data):
    n = case.llm.n_vocab
    ids = data.draw(st.lists(st.integers(0, n - 1), max_size=30))
    for special in (False, True):
        dec = case.llm.stream_decoder(special=special)
        pieces = [dec.push(i) for i in ids] + [dec.finish()]
        assert all(isinstance(p, str) for p in pieces)  # valid UTF-8, by the binding's strict decode
        assert "".join(pieces) == case.llm.detokenize(ids, special=special)


def _byte_token(case, b):
    if case.kind == "spm":
        return case.llm.metadata["tokenizer.ggml.tokens"].index(f"<0x{b:02X}>")
    (tid,) = case.llm.tokenize(bytes([b]), add_special=False)  # a lone non-ASCII byte is its own token
    return tid


def test_streaming_holds_back_a_character_split_across_tokens(case):
    byte_ids = [_byte_token(case, b) for b in "😀".encode()]
    dec = case.llm.stream_decoder()
    assert [dec.push(i) for i in byte_ids] == ["", "", "", "😀"]
    assert dec.finish() == ""
    dec = case.llm.stream_decoder()
    assert [dec.push(i) for i in byte_ids[:2]] == ["", ""]
    assert dec.finish() == "\ufffd"  # an incomplete character at the end: one U+FFFD
    assert case.llm.detokenize(byte_ids[:2]) == "\ufffd"


# ---------------------------------------------------------------------------
# UTF-8 decoding as Python does it
# ---------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=40), cut=st.integers(0, 40))
def test_utf8_decode_replace_equals_python_incrementally(data, cut):
    text, used = _core.testing.utf8_decode_replace(data, True)
    assert text == data.decode("utf-8", errors="replace") and used == len(data)
    head, n = _core.testing.utf8_decode_replace(data[:cut], False)
    tail, _ = _core.testing.utf8_decode_replace(data[n:], True)
    assert head + tail == text


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------

def _vocab_file(path, model="gpt2", pre="qwen2", tokens=("a", "b", "ab"), merges=("a b",)):
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(list(tokens))
    w.add_token_types([1] * len(tokens))
    if merges:
        w.add_token_merges(list(merges))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_a_small_handmade_vocabulary_merges(tmp_path):
    # the byte-level spellings of "a", "b", "ab" are themselves
    llm = LLM(_vocab_file(tmp_path / "v.gguf"), vocab_only=True)
    assert llm.tokenize("ab", add_special=False) == [2]
    assert llm.tokenize("ba", add_special=False) == [1, 0]
    with pytest.raises(HearthError, match="cannot encode byte"):
        llm.tokenize("c", add_special=False)


def test_unknown_tokenizer_model_is_refused_at_load(tmp_path):
    path = _vocab_file(tmp_path / "bad-model.gguf", model="wordpiece")
    with pytest.raises(HearthError, match=r"tokenizer\.ggml\.model 'wordpiece' is not supported"):
        LLM(path, vocab_only=True)


def test_unknown_pre_tokenizer_is_refused_at_load(tmp_path):
    path = _vocab_file(tmp_path / "bad-pre.gguf", pre="no-such-split")
    with pytest.raises(HearthError, match="no-such-split"):
        LLM(path, vocab_only=True)


def test_vocab_only_model_has_no_weights_to_run(case):
    with pytest.raises(HearthError, match="vocab_only"):
        case.llm.eval([1, 2])


def test_a_file_without_tokenizer_says_so(tmp_path):
    from helpers.gguf_files import write_tiny_model
    llm = LLM(write_tiny_model(tmp_path / "w.gguf", arch="llama", weight_type="f32", tied=False, seed=1))
    with pytest.raises(HearthError, match="carries no tokenizer"):
        llm.tokenize("hello")
    with pytest.raises(HearthError, match="carries no tokenizer"):
        LLM(tmp_path / "w.gguf", vocab_only=True)
