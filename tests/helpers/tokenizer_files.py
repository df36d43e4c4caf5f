"""Tokenizers for the tests: small ones trained here (offline, seconds) and
the reference encoders for the real tokenizer files of HEARTH_TEST_MODELS.

Each trained tokenizer is written as a Hugging Face style folder that the
converter reads (`tokenizer.model` for SentencePiece, `tokenizer.json` for
byte-level BPE), so the tests go through the same path as real models.
"""
from __future__ import annotations

import base64
import json
import pathlib

# The pre-tokenizer regexes as Qwen2's / Llama 3's own tokenizer.json spell them.
QWEN2_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
LLAMA3_RE = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
# Qwen3.5's: marks (\p{M}) join letters
QWEN35_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
             r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# the families of tokenizer.ggml.pre hearth implements, by the name the converter writes
BPE_FAMILIES = {"gpt2": "gpt-2", "llama3": "llama-bpe", "qwen2": "qwen2", "smollm": "smollm", "qwen35": "qwen35"}
BPE_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Qwen (v1) tiktoken: the pattern and special tokens of tokenization_qwen.py
QWEN_PAT = QWEN2_RE
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [f"<|extra_{i}|>" for i in range(205)]


def bpe_pre_tokenizer(family: str):
    from tokenizers import Regex, pre_tokenizers as pt
    if family == "gpt2":
        return pt.ByteLevel(add_prefix_space=False, use_regex=True)
    if family == "smollm":
        return pt.Sequence([pt.Digits(individual_digits=True), pt.ByteLevel(add_prefix_space=False, use_regex=True)])
    pattern = {"llama3": LLAMA3_RE, "qwen2": QWEN2_RE, "qwen35": QWEN35_RE}[family]
    return pt.Sequence([pt.Split(Regex(pattern), behavior="isolated", invert=False),
                        pt.ByteLevel(add_prefix_space=False, use_regex=False)])


def train_bpe(folder: pathlib.Path, lines, family: str, vocab_size: int = 3000) -> pathlib.Path:
    """A byte-level BPE tokenizer.json of the family, trained on lines."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(ignore_merges=family == "llama3"))
    tok.pre_tokenizer = bpe_pre_tokenizer(family)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=BPE_SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines, trainer)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "add_bos_token": False, "eos_token": "<|endoftext|>", "bos_token": None,
        "model_max_length": 4096}))
    return folder


SPM_USER_DEFINED = ["<sep>", "<|user|>"]


def train_sentencepiece(folder: pathlib.Path, lines, vocab_size: int = 1500) -> pathlib.Path:
    """A SentencePiece BPE model as Llama's: byte fallback, the dummy prefix,
    identity normalization, whitespace kept as it is; with two user-defined
    pieces, which sentencepiece matches in the text as whole pieces."""
    import sentencepiece as spm
    folder.mkdir(parents=True, exist_ok=True)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
        allow_whitespace_only_pieces=True, character_coverage=0.9995, max_sentence_length=1 << 16,
        user_defined_symbols=SPM_USER_DEFINED, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        minloglevel=2, num_threads=2)
    (folder / "tokenizer.vocab").unlink(missing_ok=True)
    return folder


def tiktoken_encoding(path: pathlib.Path):
    """The reference encoder of a Qwen (v1) qwen.tiktoken file."""
    import tiktoken
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    specials = {t: len(ranks) + i for i, t in enumerate(QWEN_SPECIALS)}
    return tiktoken.Encoding("qwen", pat_str=QWEN_PAT, mergeable_ranks=ranks, special_tokens=specials)
