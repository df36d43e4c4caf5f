"""Writes the seed corpora of the libFuzzer harnesses in tests/fuzz/, and the
vocabularies they encode with, into a folder (generated, never committed):

    OUT/fuzz_gguf/          tiny models (tests/helpers/gguf_files.py) of several
                            architectures and tensor types, and small vocab-only files
    OUT/fuzz_tokenizer/     texts (tests/helpers/text_corpus.py), flag byte first
    OUT/fuzz_detokenizer/   id sequences, in fuzz_detokenizer.cpp's encoding
    OUT/fuzz_chat_format/   the real templates of tests/data/chat_templates/ with conversations
    OUT/vocab/              llama2-vocab.gguf: Llama 2's tokenizer.model as a vocab-only GGUF
                            (hearth-convert --vocab-only; the C++ tokenizer reads GGUF only)

Usage: python tests/fuzz/make_seeds.py OUT   (HEARTH_TEST_MODELS, default ../shared/models)
"""
from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import random
import subprocess
import sys

import gguf

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from helpers import text_corpus  # noqa: E402
from helpers.gguf_files import write_tiny_model  # noqa: E402

# small enough that a mutation touches something that matters (a few KB each)
SMALL = dict(n_vocab=16, n_embd=32, n_layer=1, n_head=2, n_head_kv=1, n_ff=32, n_ctx=64)

BPE_VOCAB_SMOLLM2 = "smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
LLAMA2_TOKENIZER = "llama2-tokenizer"


def models_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("HEARTH_TEST_MODELS", REPO.parent / "shared" / "models")).resolve()


# Two small tokenizers of 16 tokens (the tiny models' vocabulary size), as GGUF metadata.
def add_spm_tokenizer(w: gguf.GGUFWriter) -> None:
    """SentencePiece: <unk> <s> </s>, the byte tokens of a few bytes, pieces with scores."""
    byte_pieces = [f"<0x{b:02X}>" for b in (0x0A, 0x20, 0xC3, 0xA9, 0xF0, 0x9F)]
    pieces = ["\u2581", "a", "b", "\u2581a", "ab", "\u2581ab", "<|user|>"]
    w.add_tokenizer_model("llama")
    w.add_token_list(["<unk>", "<s>", "</s>"] + byte_pieces + pieces)
    w.add_token_types([2, 3, 3] + [6] * len(byte_pieces) + [1] * (len(pieces) - 1) + [4])
    w.add_token_scores([0.0] * (3 + len(byte_pieces)) + [-float(i) for i in range(len(pieces))])
    w.add_add_bos_token(True)  # BOS 1 and EOS 2: SentencePiece's defaults
    w.add_chat_template("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}")


def add_bpe_tokenizer(w: gguf.GGUFWriter) -> None:
    """Byte-level BPE (GPT-2's spelling: \u0120 a space, \u010a a newline, \u00c3\u00a9 the bytes of e-acute)."""
    normal = ["a", "b", "ab", "\u0120", "\u0120ab", "c", "\u0120a", "\u010a", "\u00c3", "\u00a9", "\u00c3\u00a9", "\u0120\u0120"]
    special = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<tool>"]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("smollm")
    w.add_token_list(normal + special)
    w.add_token_types([1] * len(normal) + [3, 3, 3, 4])
    w.add_token_merges(["a b", "\u0120 ab", "\u0120 a", "\u0120 \u0120", "\u00c3 \u00a9"])
    w.add_eos_token_id(13)  # over write_tiny_model's 2 (gguf's warning about it is silenced in main)
    w.add_chat_template("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")


def add_optional_hparams(w: gguf.GGUFWriter) -> None:
    """The keys the loader reads when present, at their usual values (SMALL's head size is 16)."""
    w.add_key_length(16)
    w.add_value_length(16)
    w.add_rope_dimension_count(8)
    w.add_rope_scaling_type(gguf.RopeScalingType.NONE)
    w.add_custom_alignment(64)


@contextlib.contextmanager
def more_metadata(*adders):
    """write_tiny_model with more keys: each adder runs on its writer just
    before the header is written (the helper builds its own GGUFWriter)."""
    original = gguf.GGUFWriter

    class Writer(original):
        def write_header_to_file(self, *args, **kwargs):
            for add in adders:
                add(self)
            super().write_header_to_file(*args, **kwargs)

    gguf.GGUFWriter = Writer
    try:
        yield
    finally:
        gguf.GGUFWriter = original


def write_vocab_only(path: pathlib.Path, add_tokenizer) -> None:
    w = gguf.GGUFWriter(str(path), "llama")
    add_tokenizer(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def gguf_seeds(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for arch, weight_type, tied in [("llama", "f32", False), ("llama", "f16", True), ("llama", "q8_0", False),
                                    ("llama", "q4_0", True), ("llama", "q4_1", False), ("llama", "q5_0", False),
                                    ("llama", "q5_1", True), ("qwen2", "q8_0", True), ("qwen2", "f32", False),
                                    # the other architectures' tables (these miss tensors of their own layout)
                                    ("qwen3", "q4_0", False), ("qwen", "q8_0", True), ("glm4", "q4_0", False),
                                    ("chatglm", "q8_0", True)]:
        write_tiny_model(out / f"{arch}-{weight_type}{'-tied' if tied else ''}.gguf", arch=arch,
                         weight_type=weight_type, tied=tied, seed=1, **SMALL)
    with more_metadata(add_optional_hparams, add_spm_tokenizer):
        write_tiny_model(out / "llama-q8_0-spm-tokenizer.gguf", arch="llama", weight_type="q8_0", seed=2, **SMALL)
    with more_metadata(add_bpe_tokenizer):
        write_tiny_model(out / "qwen2-q4_0-bpe-tokenizer.gguf", arch="qwen2", weight_type="q4_0", tied=True,
                         seed=3, **SMALL)
    write_vocab_only(out / "vocab-spm.gguf", add_spm_tokenizer)
    write_vocab_only(out / "vocab-bpe.gguf", add_bpe_tokenizer)


def tokenizer_seeds(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = text_corpus.lines()
    rng = random.Random(13)
    picked = lines[:: max(1, len(lines) // 60)][:60] + ["", " ", "  a", "<s>hi</s>", "<|im_start|>user\nhi<|im_end|>"]
    for i, line in enumerate(picked):
        # flags: bit 0 parse_special; bits 1..3 the split (fuzz_tokenizer_bpe only)
        (out / f"text-{i:03d}").write_bytes(bytes([rng.randrange(16)]) + line.encode())
    for i, data in enumerate(text_corpus.INVALID_PIECES):
        (out / f"invalid-{i:03d}").write_bytes(b"\x00a " + data + b" z")


def detokenizer_seeds(out: pathlib.Path, n_vocabularies: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(17)
    for v in range(n_vocabularies):
        for special in (0, 1):
            for i in range(8):
                ids = [rng.randrange(1 << 16) for _ in range(rng.randrange(1, 24))]
                data = bytes([v << 1 | special]) + b"".join(x.to_bytes(3, "little") for x in ids)
                (out / f"vocab{v}-special{special}-{i}").write_bytes(data)
    # Llama 2's byte tokens <0xF0> <0x9F> <0x98> <0x80> (3 + byte): an emoji across four tokens
    emoji = b"".join((3 + b).to_bytes(3, "little") for b in "😀".encode())
    (out / "vocab1-emoji").write_bytes(bytes([1 << 1]) + emoji)
    (out / "vocab1-emoji-cut").write_bytes(bytes([1 << 1]) + emoji[:6])


def chat_seeds(out: pathlib.Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    conversations = [
        [("user", "Hello!")],
        [("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello."), ("user", "  Why?\n")],
        [("user", "2+2?"), ("assistant", "<think>\nadd\n</think>\n\n4"), ("user", "and 3+3?")],
        [("assistant", "first"), ("system", "late"), ("user", "")],
    ]
    for template in sorted((REPO / "tests" / "data" / "chat_templates").glob("*.jinja")):
        for i, conv in enumerate(conversations):
            flags = i & 3 | (i * 3 % 12) << 2
            body = template.read_bytes() + b"".join(b"\0" + r.encode() + b"\0" + c.encode() for r, c in conv)
            (out / f"{template.stem}-{i}").write_bytes(bytes([flags]) + body)


def llama2_vocab(out_dir: pathlib.Path) -> pathlib.Path:
    """Llama 2's tokenizer.model as a GGUF, written by the project's converter."""
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / "llama2-vocab.gguf"
    src = models_dir() / LLAMA2_TOKENIZER
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]))
    subprocess.run([sys.executable, "-m", "hearthlm.convert.cli", str(src), "-o", str(out), "-t", "f32",
                    "--vocab-only", "--no-progress"], check=True, env=env, stderr=subprocess.DEVNULL)
    return out


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    logging.getLogger("gguf").setLevel(logging.ERROR)
    smollm2 = models_dir() / BPE_VOCAB_SMOLLM2
    if not smollm2.is_file():
        sys.exit(f"make_seeds.py: {smollm2} is missing (set HEARTH_TEST_MODELS to the shared models folder)")
    gguf_seeds(out / "fuzz_gguf")
    tokenizer_seeds(out / "fuzz_tokenizer")
    detokenizer_seeds(out / "fuzz_detokenizer", n_vocabularies=2)
    chat_seeds(out / "fuzz_chat_format")
    llama2 = llama2_vocab(out / "vocab")
    # what run.sh hands the harnesses as HEARTH_FUZZ_VOCAB: BPE first, SPM second
    (out / "vocab" / "bpe").write_text(str(smollm2) + "\n")
    (out / "vocab" / "spm").write_text(str(llama2.resolve()) + "\n")
    print(f"make_seeds.py: seeds and vocabularies in {out}")


if __name__ == "__main__":
    main()
