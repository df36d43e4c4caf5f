#!/usr/bin/env python3
"""Prefill and decode speed: hearth vs llama.cpp vs PyTorch, same file, same threads, one run.

    PYTHONPATH=python python bench/bench.py MODEL.gguf [--hf HF_FOLDER] [--threads 2] [--reps 3]

Tests, as llama-bench names them:
  pp128, pp512  prefill: that many tokens in one eval from an empty cache
  pp2048        the same over a long prompt (attention over the prompt weighs in)
  tg128         decode: 128 evals of one token each, from an empty cache
  tg128@d2048   the same after a 2048-token prompt (decode at depth)
  b1 .. b16     batched decode: 1, 2, 4, 8 or 16 sequences (32-token prompts)
                each adding one token per step, 32 steps; aggregate tokens/s
                (bench/batched_decode.py: hearth's LLMEngine, llama.cpp as
                its llama-batched-bench, one llama_decode of N rows a step)
Tokens per second, median over --reps (after one warm-up run per engine).
The reps interleave the engines (rep 1: hearth, llama.cpp, torch; rep 2: ...)
so that background load on a shared machine hits them alike.

- hearth: `hearthlm.LLM(MODEL, n_threads, n_ctx, kv_type)`, `eval()` through
  the Python API, last-token logits only (`all_logits=False`), `reset()`
  before each rep.
- llama.cpp: `llama_cpp.Llama(MODEL, n_batch=512, n_ubatch=512, n_threads,
  n_threads_batch)`, `eval()`, the same KV type; skipped when llama-cpp-python
  is not importable.
- PyTorch: transformers on --hf (the HF folder the GGUF was converted from),
  fp32 unless --torch-dtype, `torch.set_num_threads(threads)`; prefill is one
  forward, decode one token at a time with the DynamicCache.

Token ids are random below the vocabulary size, fixed seed. Timings only,
never a test; record results in bench/README.md with the machine's details.
"""
from __future__ import annotations

import argparse
import inspect
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # llama_cpp_ref: one place for the llama.cpp setup

# (name, prefill tokens, decode tokens, decode depth: tokens already in the cache)
TESTS = (("pp128", 128, 0, 0), ("pp512", 512, 0, 0), ("pp2048", 2048, 0, 0),
         ("tg128", 0, 128, 0), ("tg128@d2048", 0, 128, 2048))
# batched decode: (name, sequences); each a BATCHED_PROMPT-token prompt, BATCHED_TOKENS tokens
BATCHED = (("b1", 1), ("b2", 2), ("b4", 4), ("b8", 8), ("b16", 16))
BATCHED_PROMPT, BATCHED_TOKENS = 32, 32


# ---------------------------------------------------------------------------
# engines: each has prefill(ids) and decode(ids) returning seconds
# ---------------------------------------------------------------------------

class Hearth:
    name = "hearth"

    def __init__(self, path, threads, n_ctx, kv_type):
        from hearthlm import LLM

        self.llm = LLM(str(path), n_threads=threads, n_ctx=n_ctx, kv_type=kv_type)
        self.path, self.threads, self.kv_type, self.engine = path, threads, kv_type, None
        self.n_vocab = self.llm.n_vocab
        params = inspect.signature(self.llm.eval).parameters
        self.kw = {"all_logits": False} if "all_logits" in params else {}
        self.note = "" if self.kw else "all logits returned (no all_logits=False)"

    def prefill(self, ids):
        self.llm.reset()
        t = time.perf_counter()
        self.llm.eval(ids, **self.kw)
        return time.perf_counter() - t

    def decode(self, ids, depth=()):
        self.llm.reset()
        if depth:
            self.llm.eval(list(depth), **self.kw)
        t = time.perf_counter()
        for tok in ids:
            self.llm.eval([tok], **self.kw)
        return time.perf_counter() - t

    def batched(self, prompts, tokens):
        if self.engine is None:  # its own KV pool, made on first use
            from batched_decode import HearthBatched
            self.engine = HearthBatched(self.path, self.threads, self.kv_type, max(n for _, n in BATCHED),
                                        BATCHED_PROMPT, BATCHED_PROMPT + BATCHED_TOKENS)
        return self.engine.run(prompts, tokens)


def llama_cpp_extra_bufts_work(path, threads) -> bool:
    """Does llama.cpp survive its AMX / repacked buffer types here? (It dies
    with SIGILL in VMs whose CPU advertises AMX without enabling it.) Probed
    in a subprocess."""
    code = ("import sys; sys.path.insert(0, %r); from helpers import llama_cpp_ref as r; "
            "l = r.open_llama_cpp(%r, n_ctx=64, n_threads=%d, logits_all=False, extra_bufts=True); "
            "l.eval(list(range(1, 33))); l.eval([5])") % (str(HERE.parent / "tests"), str(path), threads)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=600)
    return r.returncode == 0


class LlamaCpp:
    name = "llama.cpp"

    def __init__(self, path, threads, n_ctx, kv_type, extra_bufts):
        from helpers import llama_cpp_ref as ref

        self.llm = ref.open_llama_cpp(path, n_ctx=n_ctx, n_threads=threads, kv_type=kv_type,
                                      logits_all=False, extra_bufts=extra_bufts,
                                      n_batch=512, n_ubatch=512)
        self.n_vocab = self.llm.n_vocab()
        self.note = ("extra buffer types (AMX/repack) on" if extra_bufts else
                     "extra buffer types (AMX/repack) off: AMX faults here")
        self.args, self.batched_ctx = (path, threads, kv_type, extra_bufts), None

    def prefill(self, ids):
        self.llm.reset()
        t = time.perf_counter()
        self.llm.eval(list(ids))
        return time.perf_counter() - t

    def decode(self, ids, depth=()):
        self.llm.reset()
        if depth:
            self.llm.eval(list(depth))
        t = time.perf_counter()
        for tok in ids:
            self.llm.eval([int(tok)])
        return time.perf_counter() - t

    def batched(self, prompts, tokens):
        if self.batched_ctx is None:  # a context of n_seq_max sequences, made on first use
            from batched_decode import LlamaCppBatched
            path, threads, kv_type, eb = self.args
            n = max(n for _, n in BATCHED)
            self.batched_ctx = LlamaCppBatched(path, threads, kv_type, n, n * (BATCHED_PROMPT + BATCHED_TOKENS), eb)
        return self.batched_ctx.run(prompts, tokens)


class Torch:
    name = "torch"

    def __init__(self, hf, threads, dtype):
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(threads)
        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(
            hf, dtype=getattr(torch, dtype), attn_implementation="sdpa").eval()
        self.n_vocab = self.model.config.vocab_size
        self.note = f"transformers, {dtype}, sdpa"

    def prefill(self, ids):
        torch = self.torch
        x = torch.tensor([list(ids)])
        with torch.inference_mode():
            t = time.perf_counter()
            self.model(input_ids=x, use_cache=True, logits_to_keep=1)
            return time.perf_counter() - t

    def decode(self, ids, depth=()):
        torch = self.torch
        from transformers import DynamicCache

        cache = DynamicCache()  # filled in place by each forward
        # transformers >= 5.2x names the argument `cache` (`past_key_values` deprecated)
        arg = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        with torch.inference_mode():
            if depth:
                self.model(input_ids=torch.tensor([list(depth)]), use_cache=True, logits_to_keep=1, **{arg: cache})
            t = time.perf_counter()
            for tok in ids:
                self.model(input_ids=torch.tensor([[int(tok)]]), use_cache=True, logits_to_keep=1,
                           **{arg: cache})
            return time.perf_counter() - t


# ---------------------------------------------------------------------------

def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gguf_summary(path):
    try:
        import gguf
        from collections import Counter

        r = gguf.GGUFReader(str(path))
        arch = r.fields["general.architecture"].contents()
        types = Counter(t.tensor_type.name for t in r.tensors if len(t.shape) > 1)
        return f"{arch}, 2-D tensors: " + ", ".join(f"{k} {v}" for k, v in types.most_common())
    except Exception as e:  # a summary only
        return f"(gguf summary unavailable: {e})"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", metavar="MODEL.gguf")
    ap.add_argument("--hf", metavar="HF_FOLDER", help="also run PyTorch (transformers) on this folder")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n-ctx", type=int, default=1024)
    ap.add_argument("--kv-type", choices=("f16", "f32", "q8_0"), default="f16", help="both engines (default f16)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--tests", default="pp128,pp512,tg128",
                    help="comma-separated subset of " + ",".join(t[0] for t in TESTS))
    ap.add_argument("--json", metavar="FILE", help="also write the medians and every rep to FILE")
    ap.add_argument("--torch-dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    ap.add_argument("--llama-extra-bufts", choices=("auto", "on", "off"), default="auto",
                    help="llama.cpp's AMX/repacked weight layouts (auto: probe in a subprocess)")
    ap.add_argument("--no-llama-cpp", action="store_true")
    ap.add_argument("--no-hearth", action="store_true")
    a = ap.parse_args(argv)

    asked = a.tests.split(",")
    tests = [t for t in TESTS if t[0] in asked]
    batched = {name: n for name, n in BATCHED if name in asked}
    unknown = set(asked) - {t[0] for t in tests} - set(batched)
    if unknown or not asked:
        ap.error(f"--tests: {','.join(sorted(unknown))} not among " + ",".join([t[0] for t in TESTS] + [b[0] for b in BATCHED]))
    if batched and a.hf:
        ap.error("--tests: the batched tests (bN) run hearth and llama.cpp only, not --hf")
    a.n_ctx = max([a.n_ctx] + [pp + tg + depth + 8 for _, pp, tg, depth in tests])  # room for every test
    engines = []
    if not a.no_hearth:
        engines.append(Hearth(a.model, a.threads, a.n_ctx, a.kv_type))
    if not a.no_llama_cpp:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            print("llama-cpp-python not importable: llama.cpp column skipped", file=sys.stderr)
        else:
            eb = {"on": True, "off": False}.get(a.llama_extra_bufts)
            if eb is None:
                eb = llama_cpp_extra_bufts_work(a.model, a.threads)
            engines.append(LlamaCpp(a.model, a.threads, a.n_ctx, a.kv_type, eb))
    if a.hf:
        engines.append(Torch(a.hf, a.threads, a.torch_dtype))
    if not engines:
        ap.error("no engine to run")

    n_vocab = min(e.n_vocab for e in engines)
    rng = np.random.default_rng(a.seed)
    ids = {name: [int(x) for x in rng.integers(0, n_vocab, size=max(pp, tg + depth))]
           for name, pp, tg, depth in tests}
    # one set of prompts per batched test, ids from 1 (0 is often special)
    prompts = {name: [[int(x) for x in rng.integers(1, n_vocab, size=BATCHED_PROMPT)] for _ in range(n)]
               for name, n in batched.items()}

    def run(e, name, pp=0, tg=0, depth=0):
        if name in batched:
            produced, seconds = e.batched(prompts[name], BATCHED_TOKENS)
            return produced / seconds
        if pp:
            return pp / e.prefill(ids[name][:pp])
        return tg / e.decode(ids[name][depth:depth + tg], ids[name][:depth])

    warm = [int(x) for x in rng.integers(1, n_vocab, size=32)]
    for e in engines:  # warm-up: page the weights in, spin up the thread pools
        e.prefill(warm)
        e.decode(warm[:4])
        if batched:
            e.batched([warm, warm[::-1]], 4)

    names_asked = [t[0] for t in tests] + list(batched)
    res = {(e.name, t): [] for e in engines for t in names_asked}
    for rep in range(a.reps):
        for t in tests:
            for e in engines:
                res[(e.name, t[0])].append(run(e, *t))
        for t in batched:
            for e in engines:
                res[(e.name, t)].append(run(e, t))
        print(f"rep {rep + 1}/{a.reps} done", file=sys.stderr)

    med = {k: statistics.median(v) for k, v in res.items()}
    names = [e.name for e in engines]
    size = os.path.getsize(a.model) / 2**20
    print(f"\n`{pathlib.Path(a.model).name}` ({size:.0f} MiB; {gguf_summary(a.model)}), "
          f"{a.threads} threads, KV {a.kv_type}, n_ctx {a.n_ctx}, median of {a.reps}; "
          f"{cpu_name()}; HEARTH_KERNELS={os.environ.get('HEARTH_KERNELS', '(auto)')}\n")
    head = "| test | " + " | ".join(f"{n} t/s" for n in names)
    if "llama.cpp" in names and "hearth" in names:
        head += " | hearth / llama.cpp"
    if "torch" in names and "hearth" in names:
        head += " | hearth / torch"
    print(head + " |")
    print("|" + "---|" * (head.count("|")))
    for t in names_asked:
        row = f"| {t} | " + " | ".join(f"{med[(n, t)]:.1f}" for n in names)
        if "llama.cpp" in names and "hearth" in names:
            row += f" | {med[('hearth', t)] / med[('llama.cpp', t)]:.2f}"
        if "torch" in names and "hearth" in names:
            row += f" | {med[('hearth', t)] / med[('torch', t)]:.2f}"
        print(row + " |")
    notes = [f"{e.name}: {e.note}" for e in engines if e.note]
    if notes:
        print("\n" + "; ".join(notes))
    spread = {k: (min(v), max(v)) for k, v in res.items()}
    print("min..max per cell: " + ", ".join(f"{n}/{t}: {lo:.1f}..{hi:.1f}" for (n, t), (lo, hi) in spread.items()))
    if a.json:
        import json
        out = {"model": str(a.model), "size_mib": size, "threads": a.threads, "kv_type": a.kv_type,
               "cpu": cpu_name(), "hearth_kernels": os.environ.get("HEARTH_KERNELS", "(auto)"),
               "notes": notes, "median": {f"{n}/{t}": v for (n, t), v in med.items()},
               "reps": {f"{n}/{t}": v for (n, t), v in res.items()}}
        pathlib.Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
