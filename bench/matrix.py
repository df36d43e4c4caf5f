#!/usr/bin/env python3
"""The whole speed matrix in one command: files x kernel sets x thread counts x
tests, hearth vs llama.cpp, with the machine's read bandwidth as the ceiling
for decode, and for batched decode (bN) the efficiency aggregate / (N x b1).
Writes matrix.md, matrix.json and matrix.png into --out.

    PYTHONPATH=python python bench/matrix.py FILE.gguf [FILE.gguf ...] \\
        [--threads 1,2] [--tests pp512,tg128,pp2048,tg128@d2048,b1,b2,b4,b8,b16] [--reps 3] \\
        [--llama-python-avx2 VENV/bin/python] [--out bench-out]

Each cell is one `bench/bench.py` run (both engines interleaved, median of
--reps) in a subprocess with HEARTH_KERNELS set to the cell's kernel set. The
AVX2 cells on an AVX-512 machine are only a fair race against a llama.cpp
built without AVX-512: give that build's interpreter with --llama-python-avx2
(see bench/README.md); otherwise the AVX2 cells race the native llama.cpp and
the table says so.

The decode ceiling is the read bandwidth (measured here, STREAM-style: threads
summing a 1 GiB buffer) divided by the bytes of weights one token reads (every
tensor but the token embeddings, which are read a row at a time, unless they
double as the output matrix).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def weight_bytes_per_token(path: str) -> int:
    """Bytes of weights one decode step reads (file size when gguf is absent)."""
    try:
        import gguf
    except ImportError:
        return os.path.getsize(path)
    r = gguf.GGUFReader(path)
    names = {t.name for t in r.tensors}
    total = 0
    for t in r.tensors:
        if t.name == "token_embd.weight" and "output.weight" in names:
            continue  # a row per token
        total += int(t.n_bytes)
    return total


def run_cell(path, kernels, threads, tests, reps, python, extra_bufts) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    env = dict(os.environ, HEARTH_KERNELS=kernels)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "python"), env.get("PYTHONPATH")]))
    cmd = [python, str(HERE / "bench.py"), path, "--threads", str(threads), "--reps", str(reps),
           "--tests", ",".join(tests), "--json", out, "--llama-extra-bufts", extra_bufts]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench.py failed for {path} ({kernels}, {threads} threads):\n{p.stderr[-3000:]}")
    res = json.loads(pathlib.Path(out).read_text())
    os.unlink(out)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+", metavar="FILE.gguf")
    ap.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    ap.add_argument("--kernels", default="auto",
                    help="comma-separated kernel sets, or auto: avx512 and avx2 where the CPU has them")
    ap.add_argument("--tests", default="pp512,tg128,pp2048,tg128@d2048,b1,b2,b4,b8,b16",
                    help="comma-separated bench.py tests (bN: N sequences decoding together)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--llama-python-avx2", metavar="PYTHON",
                    help="interpreter whose llama_cpp is built without AVX-512, for the avx2 cells")
    ap.add_argument("--llama-extra-bufts", choices=("auto", "on", "off"), default="auto")
    ap.add_argument("--out", default="bench-out", help="folder for matrix.md / .json / .png")
    a = ap.parse_args(argv)

    from hearthlm import _core

    sets = ([k for k in ("avx512", "avx2") if k in _core.supported_kernels()] if a.kernels == "auto"
            else a.kernels.split(","))
    threads = [int(t) for t in a.threads.split(",")]
    tests = a.tests.split(",")
    out = pathlib.Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    bandwidth = {t: _core.testing.read_bandwidth(t) for t in threads}
    for t, bw in bandwidth.items():
        print(f"read bandwidth, {t} thread(s): {bw / 1e9:.1f} GB/s", file=sys.stderr)

    cells = []
    for path in a.files:
        wbytes = weight_bytes_per_token(path)
        for k in sets:
            python = a.llama_python_avx2 if (k == "avx2" and a.llama_python_avx2) else sys.executable
            llama_build = "without AVX-512" if python != sys.executable else "native"
            for t in threads:
                print(f"{pathlib.Path(path).name} {k} {t} thread(s) ...", file=sys.stderr, flush=True)
                r = run_cell(path, k, t, tests, a.reps, python, a.llama_extra_bufts)
                single = r["median"].get("hearth/b1")
                for test in tests:
                    h = r["median"].get(f"hearth/{test}")
                    l = r["median"].get(f"llama.cpp/{test}")
                    ceiling = bandwidth[t] / wbytes if test.startswith("tg") else None
                    # batched decode: aggregate / (N x one sequence's rate)
                    n = int(test[1:]) if test[0] == "b" else None
                    eff = h / (n * single) if n and h and single else None
                    cells.append({"file": pathlib.Path(path).name, "kernels": k, "threads": t, "test": test,
                                  "hearth": h, "llama_cpp": l, "ratio": (h / l) if h and l else None,
                                  "ceiling": ceiling, "of_ceiling": (h / ceiling) if h and ceiling else None,
                                  "batched_efficiency": eff,
                                  "llama_cpp_build": llama_build, "cpu": r["cpu"], "reps": r["reps"]})

    meta = {"cpu": cells[0]["cpu"] if cells else "", "bandwidth_gb_s": {t: bw / 1e9 for t, bw in bandwidth.items()},
            "reps": a.reps, "command": " ".join(sys.argv)}
    (out / "matrix.json").write_text(json.dumps({"meta": meta, "cells": cells}, indent=1))
    lines = [f"CPU: {meta['cpu']}; read bandwidth " +
             ", ".join(f"{t} thread(s) {bw:.1f} GB/s" for t, bw in meta["bandwidth_gb_s"].items()) +
             f"; median of {a.reps}", "",
             "| file | kernels | threads | test | hearth t/s | llama.cpp t/s | hearth / llama.cpp | decode ceiling t/s | hearth / ceiling | batched efficiency | llama.cpp build |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f = lambda v, fmt: "" if v is None else format(v, fmt)  # noqa: E731
    for c in cells:
        lines.append(f"| {c['file']} | {c['kernels']} | {c['threads']} | {c['test']} | {f(c['hearth'], '.1f')} | "
                     f"{f(c['llama_cpp'], '.1f')} | {f(c['ratio'], '.2f')} | {f(c['ceiling'], '.1f')} | "
                     f"{f(c['of_ceiling'], '.0%')} | {f(c['batched_efficiency'], '.2f')} | {c['llama_cpp_build']} |")
    (out / "matrix.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(cells, tests, out / "matrix.png", meta)
    return 0


def plot(cells, tests, path, meta):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no chart", file=sys.stderr)
        return
    fig, axes = plt.subplots(len(tests), 1, figsize=(11, 3.2 * len(tests)), squeeze=False)
    for ax, test in zip(axes[:, 0], tests):
        cs = [c for c in cells if c["test"] == test]
        labels = [f"{c['file'].replace('.gguf', '')[:18]}\n{c['kernels']} {c['threads']}t" for c in cs]
        x = range(len(cs))
        ax.bar([i - 0.2 for i in x], [c["hearth"] or 0 for c in cs], 0.4, label="hearth")
        ax.bar([i + 0.2 for i in x], [c["llama_cpp"] or 0 for c in cs], 0.4, label="llama.cpp")
        if test.startswith("tg"):
            ax.scatter(list(x), [c["ceiling"] for c in cs], marker="_", s=900, color="k",
                       label="bandwidth ceiling", zorder=3)
        ax.set_title(test)
        ax.set_ylabel("tokens/s")
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, fontsize=7, rotation=15)
        ax.legend(fontsize=8)
    fig.suptitle(f"hearth vs llama.cpp — {meta['cpu']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
