#!/usr/bin/env python3
"""Resident memory after loading a model and one forward pass: hearth vs llama.cpp.

    PYTHONPATH=python python bench/memory.py MODEL.gguf [--n-ctx 512] [--kv-type f16] [--threads 2]

Each engine runs in its own fresh subprocess: import, read VmRSS (the
interpreter + libraries baseline), load the model, evaluate a few tokens,
read VmRSS and VmHWM (peak) from /proc/self/status. Printed next to the file
size and the KV cache size (2 x n_layer x n_ctx x n_head_kv x head_dim x
element size), since the design asks for resident memory ~ file size + KV
cache (weights memory-mapped, never copied). Linux only (/proc).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
MiB = 2**20


def status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def child(engine, model, n_ctx, kv_type, threads, n_tokens):
    """Runs in the subprocess; prints one JSON line."""
    import numpy as np  # noqa: F401  (both engines need it: count it in the baseline)

    if engine == "hearth":
        from hearthlm import LLM

        base = status_kib("VmRSS")
        llm = LLM(model, n_threads=threads, n_ctx=n_ctx, kv_type=kv_type)
        loaded = status_kib("VmRSS")
        llm.eval(list(range(1, n_tokens + 1)))
    else:
        sys.path.insert(0, str(HERE.parent / "tests"))
        import llama_cpp  # noqa: F401
        from helpers import llama_cpp_ref as ref

        base = status_kib("VmRSS")
        llm = ref.open_llama_cpp(model, n_ctx=n_ctx, n_threads=threads, kv_type=kv_type,
                                 logits_all=False)
        loaded = status_kib("VmRSS")
        llm.eval(list(range(1, n_tokens + 1)))
    print(json.dumps({"base": base, "loaded": loaded, "rss": status_kib("VmRSS"),
                      "hwm": status_kib("VmHWM")}))


def kv_bytes(model, n_ctx, kv_type):
    import gguf

    r = gguf.GGUFReader(str(model))
    f = lambda k: r.fields[k].contents()  # noqa: E731
    arch = f("general.architecture")
    n_layer = int(f(f"{arch}.block_count"))
    n_head = int(f(f"{arch}.attention.head_count"))
    n_head_kv = int(f(f"{arch}.attention.head_count_kv")) if f"{arch}.attention.head_count_kv" in r.fields else n_head
    n_embd = int(f(f"{arch}.embedding_length"))
    head_dim = int(f(f"{arch}.attention.key_length")) if f"{arch}.attention.key_length" in r.fields else n_embd // n_head
    return 2 * n_layer * n_ctx * n_head_kv * head_dim * {"f16": 2, "f32": 4}[kv_type], arch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", metavar="MODEL.gguf")
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--kv-type", choices=("f16", "f32"), default="f16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=8, help="tokens in the forward pass (default 8)")
    ap.add_argument("--engines", default="hearth,llama.cpp")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.child:
        child(a.child, a.model, a.n_ctx, a.kv_type, a.threads, a.tokens)
        return

    file_size = os.path.getsize(a.model)
    kv, arch = kv_bytes(a.model, a.n_ctx, a.kv_type)
    rows = []
    for engine in a.engines.split(","):
        r = subprocess.run([sys.executable, __file__, a.model, "--child", engine, "--n-ctx", str(a.n_ctx),
                            "--kv-type", a.kv_type, "--threads", str(a.threads), "--tokens", str(a.tokens)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            err = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
            rows.append((engine, None, err))
            continue
        rows.append((engine, json.loads(r.stdout.strip().splitlines()[-1]), ""))

    print(f"\n`{pathlib.Path(a.model).name}` ({arch}): file {file_size / MiB:.1f} MiB, "
          f"KV cache {kv / MiB:.1f} MiB ({a.kv_type}, n_ctx {a.n_ctx}), "
          f"file + KV = {(file_size + kv) / MiB:.1f} MiB; forward pass of {a.tokens} tokens, {a.threads} threads\n")
    print("| engine | RSS after imports | RSS after load | RSS after forward | peak (VmHWM) | "
          "forward RSS - imports | (RSS - imports) / (file + KV) |")
    print("|---|---|---|---|---|---|---|")
    for engine, m, err in rows:
        if m is None:
            print(f"| {engine} | failed: {err} | | | | | |")
            continue
        grown = (m["rss"] - m["base"]) * 1024
        print(f"| {engine} | {m['base'] / 1024:.1f} MiB | {m['loaded'] / 1024:.1f} MiB | "
              f"{m['rss'] / 1024:.1f} MiB | {m['hwm'] / 1024:.1f} MiB | {grown / MiB:.1f} MiB | "
              f"{grown / (file_size + kv):.2f} |")


if __name__ == "__main__":
    main()
