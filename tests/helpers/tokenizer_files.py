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

# DeepSeek LLM's letter class: the ranges of llama.cpp's regex, by code point
# (written as characters, some would be folded by a Unicode normalization).
DEEPSEEK_LLM_LETTERS = [(65, 90), (97, 122), (181, 181), (192, 214), (216, 246), (248, 442), (444, 447), (452, 659), (661, 687), (880, 883), (886, 886), (887, 887), (891, 893), (895, 895), (902, 902), (904, 906), (908, 908), (910, 929), (931, 1013), (1015, 1153), (1162, 1327), (1329, 1366), (4256, 4293), (5024, 5109), (5112, 5117), (7312, 7354), (7357, 7359), (7424, 7467), (7531, 7543), (7545, 7578), (7680, 7957), (7960, 7965), (7968, 8005), (8008, 8013), (8016, 8023), (8025, 8025), (8027, 8027), (8029, 8029), (8031, 8061), (8064, 8116), (8118, 8124), (8126, 8126), (8130, 8132), (8134, 8140), (8144, 8147), (8150, 8155), (8160, 8172), (8178, 8180), (8182, 8188), (8450, 8450), (8455, 8455), (8458, 8467), (8469, 8469), (8473, 8477), (8484, 8484), (8486, 8486), (8488, 8488), (8490, 8493), (8495, 8500), (8505, 8505), (8508, 8511), (8517, 8521), (8526, 8526), (8579, 8579), (8580, 8580), (11264, 11387), (11390, 11492), (11499, 11502), (11506, 11506), (11507, 11507), (42560, 42605), (42624, 42651), (42786, 42863), (42865, 42887), (42891, 42894), (43888, 43967), (64256, 64262), (64275, 64279), (65313, 65338), (65345, 65370), (66560, 66639), (66736, 66771), (66776, 66811), (68736, 68786), (68800, 68850), (71840, 71903), (125184, 125251)]
# DeepSeek Coder's splits before its Digits(individual_digits) step
DEEPSEEK_CODER_SPLITS = ("[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", "[一-龥ࠀ-一가-퟿]+")
# llama.cpp's list for DeepSeek LLM: its tokenizer.json's splits, then \p{N}+ for Digits
DEEPSEEK_LLM_REGEXES = (
    "[\r\n]",
    r"\s?[" + "".join(f"{chr(a)}-{chr(b)}" for a, b in DEEPSEEK_LLM_LETTERS) + "]+",
    r"\s?[!-/:-~！-／：-～‘-‟　-。]+",
    r"\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    r"\p{N}+",
)

# the families of tokenizer.ggml.pre hearth implements, by the name the converter writes
BPE_FAMILIES = {"gpt2": "gpt-2", "llama3": "llama-bpe", "qwen2": "qwen2", "smollm": "smollm", "qwen35": "qwen35",
                "deepseek-coder": "deepseek-coder", "deepseek-llm": "deepseek-llm", "falcon": "falcon"}
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
    if family == "falcon":
        # Falcon's tokenizer.json: runs of punctuation apart, GPT-2's split,
        # digit runs apart, then at most three digits a piece
        return pt.Sequence([pt.Punctuation(behavior="contiguous"),
                            pt.ByteLevel(add_prefix_space=False, use_regex=True),
                            pt.Digits(individual_digits=False),
                            pt.Split(Regex("[0-9][0-9][0-9]"), behavior="isolated", invert=False)])
    if family.startswith("deepseek"):
        # as DeepSeek's tokenizer.json files chain them: isolated splits, the
        # digits (one each for Coder, runs for LLM), then bytes without a regex
        coder = family == "deepseek-coder"
        splits = DEEPSEEK_CODER_SPLITS if coder else DEEPSEEK_LLM_REGEXES[:-1]
        return pt.Sequence([pt.Split(Regex(r), behavior="isolated", invert=False) for r in splits] +
                           [pt.Digits(individual_digits=coder),
                            pt.ByteLevel(add_prefix_space=False, use_regex=False)])
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
