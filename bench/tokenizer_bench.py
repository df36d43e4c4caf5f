"""Tokenizer speed: hearth's C++ tokenizer against the reference libraries on
the same vocabulary, single-threaded, in one run.

Encodes the test corpus (tests/helpers/text_corpus.py: about 5,000 varied lines in
many scripts) line by line and as one text, and reports MB/s (UTF-8 bytes of
input per second, median of --reps) and the ratio hearth / reference. The
token ids are checked equal first, so both sides do the same work.

    HEARTH_TEST_MODELS=../shared/models PYTHONPATH=python python bench/tokenizer_bench.py

Vocabularies: SmolLM2 (the shared GGUF vs its tokenizer.json, Hugging Face
`tokenizers`), Qwen2 (byte-level BPE, 151k tokens), Llama 2 (SentencePiece
vs `sentencepiece`), Qwen v1 (qwen.tiktoken vs `tiktoken`).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread, as hearth
os.environ.setdefault("RAYON_NUM_THREADS", "1")

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from helpers import text_corpus  # noqa: E402
import tokenizer_files as tf  # noqa: E402
from hearthlm import LLM  # noqa: E402
from hearthlm.convert.converter import convert  # noqa: E402


def vocab_only(folder: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    out = out_dir / f"{folder.name}-vocab.gguf"
    if not out.exists():
        convert(str(folder), out, "f32", vocab_only=True, progress=False)
    return out


def cases(models: pathlib.Path, tmp: pathlib.Path):
    import sentencepiece
    import tokenizers
    smol = models / "smollm2-135m-instruct"
    hf_smol = tokenizers.Tokenizer.from_file(str(smol / "hf" / "tokenizer.json"))
    yield ("SmolLM2 (BPE, smollm)", LLM(smol / "SmolLM2-135M-Instruct.Q4_1.gguf", vocab_only=True),
           "tokenizers", lambda t: hf_smol.encode(t, add_special_tokens=False).ids, True)
    hf_qwen = tokenizers.Tokenizer.from_file(str(models / "qwen2-tokenizer" / "tokenizer.json"))
    yield ("Qwen2 (BPE, qwen2)", LLM(vocab_only(models / "qwen2-tokenizer", tmp), vocab_only=True),
           "tokenizers", lambda t: hf_qwen.encode(t, add_special_tokens=False).ids, True)
    sp = sentencepiece.SentencePieceProcessor(model_file=str(models / "llama2-tokenizer" / "tokenizer.model"))
    yield ("Llama 2 (SentencePiece)", LLM(vocab_only(models / "llama2-tokenizer", tmp), vocab_only=True),
           "sentencepiece", sp.encode, False)
    enc = tf.tiktoken_encoding(models / "qwen-tiktoken" / "qwen.tiktoken")
    yield ("Qwen v1 (tiktoken)", LLM(vocab_only(models / "qwen-tiktoken", tmp), vocab_only=True),
           "tiktoken", enc.encode_ordinary, False)


def mb_per_s(fn, texts, n_bytes, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for t in texts:
            fn(t)
        times.append(time.perf_counter() - t0)
    return n_bytes / statistics.median(times) / 1e6, min(times), max(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.environ.get("HEARTH_TEST_MODELS", "../shared/models"),
                    help="the shared models folder (default: $HEARTH_TEST_MODELS)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    lines = text_corpus.lines()
    one = text_corpus.as_one_text()
    n_lines = sum(len(t.encode()) for t in lines)
    n_one = len(one.encode())
    print(f"corpus: {len(lines)} lines, {n_lines / 1e6:.2f} MB; as one text {n_one / 1e6:.2f} MB; "
          f"1 thread; median of {args.reps}; {platform.processor() or platform.machine()}\n")
    print("| vocabulary | input | hearth MB/s | reference | reference MB/s | hearth / reference |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, llm, ref_name, ref, parse_special in cases(pathlib.Path(args.models), pathlib.Path(tmp)):
            ours = lambda t: llm.tokenize(t, add_special=False, parse_special=parse_special)  # noqa: E731
            bad = sum(ours(t) != ref(t) for t in lines)
            assert bad == 0 and ours(one) == ref(one), f"{name}: ids differ on {bad} lines"
            for label, texts, nb in (("lines", lines, n_lines), ("one text", [one], n_one)):
                h, _, _ = mb_per_s(ours, texts, nb, args.reps)
                r, _, _ = mb_per_s(ref, texts, nb, args.reps)
                print(f"| {name} | {label} | {h:.2f} | {ref_name} | {r:.2f} | {h / r:.2f} |", flush=True)


if __name__ == "__main__":
    main()
