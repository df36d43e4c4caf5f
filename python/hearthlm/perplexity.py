"""Perplexity of a GGUF model over a text file, by llama.cpp's method
(`llama-perplexity`): the text's tokens in windows of n_ctx, each window
evaluated from an empty cache, and only the second half of each window scored
(every scored token then has at least n_ctx / 2 tokens of context). When the
model adds a BOS token, the first token of each window becomes BOS.

    hearth-perplexity MODEL.gguf TEXT.txt [-c 512] [--chunks N] [--llama-cpp]

With --llama-cpp, llama.cpp (through llama-cpp-python) scores the same file
and the same windows the same way, for the comparison side by side.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence

import numpy as np


@dataclass
class Perplexity:
    ppl: float
    stderr: float        # of the perplexity, from the spread of per-token log-likelihoods
    n_tokens: int        # tokens scored
    chunk_ppl: List[float]  # running estimate after each window

    def __str__(self) -> str:
        return f"PPL = {self.ppl:.4f} +/- {self.stderr:.4f} over {self.n_tokens} tokens"


def windows(ids: Sequence[int], n_ctx: int, bos: Optional[int], max_chunks: Optional[int] = None):
    """The evaluation windows: consecutive n_ctx-token slices (the last
    partial one dropped), the first token replaced by BOS when there is one."""
    n = len(ids) // n_ctx
    if max_chunks is not None:
        n = min(n, max_chunks)
    for i in range(n):
        w = list(ids[i * n_ctx:(i + 1) * n_ctx])
        if bos is not None:
            w[0] = bos
        yield w


def score(logits_of: Callable[[List[int]], np.ndarray], ids: Sequence[int], n_ctx: int,
          bos: Optional[int] = None, max_chunks: Optional[int] = None, progress=None) -> Perplexity:
    """logits_of(window) -> float [n_ctx, n_vocab] logits of every position."""
    if n_ctx < 4:
        raise ValueError(f"n_ctx must be at least 4, got {n_ctx}")
    first = n_ctx // 2
    nll: List[float] = []
    running = []
    chunks = list(windows(ids, n_ctx, bos, max_chunks))
    if not chunks:
        raise ValueError(f"the text has {len(ids)} tokens: fewer than one window of {n_ctx} (lower -c)")
    for w in chunks:
        # only the scored half in float64: a fresh [n_ctx, n_vocab] double
        # array is hundreds of MB, slow to fault in on a small VM
        logits = np.asarray(logits_of(w))[first:n_ctx - 1].astype(np.float64)
        targets = np.asarray(w[first + 1:n_ctx])
        m = logits.max(axis=1, keepdims=True)
        logz = (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
        nll.extend((logz - logits[np.arange(len(targets)), targets]).tolist())
        running.append(math.exp(sum(nll) / len(nll)))
        if progress:
            progress(len(running), len(chunks), running[-1])
    a = np.asarray(nll)
    mean = a.mean()
    # the perplexity's standard error from the log-likelihoods' (delta method), as llama.cpp prints
    se = math.exp(mean) * (a.std(ddof=1) / math.sqrt(len(a)) if len(a) > 1 else 0.0)
    return Perplexity(math.exp(mean), se, len(a), running)


def hearth_perplexity(model, ids, n_ctx, max_chunks=None, n_threads=None, activations="q8",
                      kv_type="f16", progress=None) -> Perplexity:
    from .llm import LLM

    llm = LLM(model, n_threads=n_threads, n_ctx=n_ctx, kv_type=kv_type, activations=activations)
    bos = _window_bos(llm)

    def logits_of(w):
        llm.reset()
        return llm.eval(w)

    return score(logits_of, ids, n_ctx, bos, max_chunks, progress)


def llama_cpp_perplexity(model, ids, n_ctx, max_chunks=None, n_threads=None, kv_type="f16",
                         progress=None) -> Perplexity:
    import os

    from llama_cpp import GGML_TYPE_F16, GGML_TYPE_F32, GGML_TYPE_Q8_0

    from .llama_cpp_compat import open_llama

    threads = n_threads or len(os.sched_getaffinity(0))
    kv = {"f16": GGML_TYPE_F16, "f32": GGML_TYPE_F32, "q8_0": GGML_TYPE_Q8_0}[kv_type]
    # llama.cpp quantizes its V cache only in its flash-attention path
    flash = {"flash_attn": True} if kv_type == "q8_0" else {}
    # the same windows as hearth's: the BOS rule of hearth's tokenizer
    from .llm import LLM

    bos = _window_bos(LLM(model, vocab_only=True))
    llm = open_llama(model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=min(n_ctx, 512), n_threads=threads,
                     n_threads_batch=threads, logits_all=True, type_k=kv, type_v=kv, verbose=False,
                     **flash)

    def logits_of(w):
        llm.reset()
        llm.eval(w)
        return np.array(llm.scores[:len(w)])

    return score(logits_of, ids, n_ctx, bos, max_chunks, progress)


def _window_bos(llm) -> Optional[int]:
    """The BOS id when the model's tokenizer adds one (its add_bos rule), else None."""
    tok = llm.get_tokenizer()
    return int(tok.bos_token_id) if tok.add_bos else None


def numpy_huge_pages(on: bool) -> Optional[bool]:
    """Turns NumPy's huge-page advice on or off; the setting before (None
    where this NumPy has no such switch). NumPy asks for transparent huge
    pages for arrays of 4 MB or more. Each window's logits are a new array
    of ~100 MB, and on KVM machines a fresh huge page can cost ~12 ms on
    first touch: the GPL-3 text (14 windows) took 14-21 s instead of 8.5 s.
    main() owns its process, so it turns the advice off (a library would
    leave NumPy's setting alone)."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # NumPy 1.x
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    return bool(_set_madvise_hugepage(on))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="hearth-perplexity", description=__doc__.split("\n\n")[0])
    ap.add_argument("model", metavar="MODEL.gguf")
    ap.add_argument("text", metavar="TEXT.txt", help="UTF-8 text to score")
    ap.add_argument("-c", "--ctx", type=int, default=512, help="window length in tokens (default 512)")
    ap.add_argument("--chunks", type=int, default=None, help="score only the first N windows")
    ap.add_argument("-t", "--threads", type=int, default=None)
    ap.add_argument("--activations", choices=("q8", "q16"), default="q8",
                    help="hearth's activation path for quantized weights (default q8)")
    ap.add_argument("--kv-type", choices=("f16", "f32", "q8_0"), default="f16")
    ap.add_argument("--llama-cpp", action="store_true",
                    help="also score with llama.cpp (llama-cpp-python) on the same windows")
    a = ap.parse_args(argv)
    numpy_huge_pages(False)

    from .errors import HearthError
    from .llm import LLM

    try:
        text = open(a.text, encoding="utf-8").read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"hearth-perplexity: cannot read {a.text}: {e}", file=sys.stderr)
        return 2
    try:
        tok = LLM(a.model, vocab_only=True)
        ids = tok.tokenize(text, add_special=False)
        n = len(ids) // a.ctx if a.chunks is None else min(a.chunks, len(ids) // a.ctx)
        print(f"{a.text}: {len(ids)} tokens, {n} windows of {a.ctx}")

        def progress(name):
            return lambda i, total, ppl: print(f"  {name} [{i}/{total}] {ppl:.4f}", flush=True)

        h = hearth_perplexity(a.model, ids, a.ctx, a.chunks, a.threads, a.activations, a.kv_type,
                              progress("hearth"))
        print(f"hearth ({a.activations} activations, KV {a.kv_type}): {h}")
        if a.llama_cpp:
            l = llama_cpp_perplexity(a.model, ids, a.ctx, a.chunks, a.threads, a.kv_type, progress("llama.cpp"))
            print(f"llama.cpp (KV {a.kv_type}): {l}")
            print(f"hearth / llama.cpp: {h.ppl / l.ppl:.4f}")
    except (HearthError, ValueError) as e:
        print(f"hearth-perplexity: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
