#!/usr/bin/env python3
"""Offline throughput with continuous batching: hearth batched vs one at a time vs llama.cpp.

    PYTHONPATH=python python bench/throughput.py MODEL.gguf [--threads 2] \
        [--sections throughput,curve,memory] [--backends hearth,hearth-serial,llama.cpp]

Shaped as vLLM's benchmarks/benchmark_throughput.py: the whole job is submitted
at once and timed by the wall clock. Three sections, each printing a markdown
table for bench/README.md (headed with the file, the threads, the CPU, the
kernel set and this command line):

throughput  --num-prompts prompts of random token ids (ids in [1, n_vocab),
            fixed --seed; lengths uniform over --input-len LO:HI), each
            generating exactly --output-len tokens (greedy, ignore_eos).
            - hearth: `LLM.generate` of all prompts at once, --max-num-seqs
              running together (continuous batching);
            - hearth-serial: the same prompts through the same engine with
              max_num_seqs=1, one request at a time;
            - hearth-prompts: the batched engine on the same prompts, one
              output token each: the prompts' cost alone. hearth-serial's
              elapsed over it is the most batching could gain if decode cost
              nothing (the prompts have to be computed either way);
            - llama.cpp: llama-cpp-python, one prompt at a time (it has no
              batching API here): reset, eval the prompt, then greedy argmax
              steps, each token fed back with eval; n_batch 512, same KV type.
            Elapsed s, requests/s, output and total (prompt + output) tokens/s,
            and hearth's output tokens/s over each backend's. --rounds N runs
            every backend N times, in turn (round 1: each backend once, then
            round 2 ...): each row is then that backend's median round, and
            each round's elapsed ÷ hearth's of the same round, with their
            median, follows the table. Also checks that
            hearth and hearth-serial produce the same token ids (batch
            invariance) and prints the prefix-cache reuse (0 for random prompts).
curve       aggregate decode tokens/s for N concurrent sequences (--curve
            1,2,4,8,16), each a --curve-prompt-len random prompt generating
            --curve-tokens tokens: LLMEngine, all N added, stepped until each
            has its first token (prefill done), then the remaining steps timed.
            Efficiency = aggregate / (N x the one-sequence rate). With
            llama.cpp among --backends, llama.cpp on the same prompts as N
            sequences of one context, each step one llama_decode of N rows
            (the shape of its llama-batched-bench).
memory      KV blocks held by 16 requests whose prompts share a --prefix-len
            token prefix (plus 16-32 tokens of their own), against 16 requests
            of the same lengths sharing nothing: the peak of
            stats()["kv_blocks_used"] over the run, in blocks and MiB, and the
            prefix-cache hits.

Each timed run follows a short warm-up on the same engine (weights paged in,
thread pool up). Timings only, never a test. One run unless --rounds (the
throughput section): on a shared machine whose speed moves between minutes,
use --rounds and quote the median of the rounds' ratios.
`HEARTH_KERNELS=scalar|avx2|avx512` forces hearth's kernel path; the header
records the set in use.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import sys
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # llama_cpp_ref: one place for the llama.cpp setup
sys.path.insert(0, str(HERE))
from bench import cpu_name, llama_cpp_extra_bufts_work  # noqa: E402  (bench/bench.py: same CPU line, same probe)
from batched_decode import greedy  # noqa: E402

MiB = 2**20
BACKENDS = ("hearth", "hearth-serial", "hearth-prompts", "llama.cpp")
SECTIONS = ("throughput", "curve", "memory")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def random_prompts(rng, n_vocab, lengths):
    """One prompt of random ids in [1, n_vocab) per length (0 left out: often a special token)."""
    return [[int(t) for t in rng.integers(1, n_vocab, size=int(n))] for n in lengths]


def header(a, title):
    """The lines above each table: what ran, where, and how to run it again."""
    from hearthlm import _core

    size = os.path.getsize(a.model) / MiB
    env = " ".join(f"{k}={shlex.quote(os.environ[k])}" for k in
                   ("PYTHONPATH", "HEARTH_KERNELS", "HEARTH_LLAMA_CPP_EXTRA_BUFTS") if k in os.environ)
    cmd = shlex.join(["python"] + sys.argv)
    print(f"\n### {title}\n")
    print(f"`{pathlib.Path(a.model).name}` ({size:.1f} MiB), {a.threads} threads, KV {a.kv_type}; "
          f"{cpu_name()}; hearth kernels {_core.kernel_name()} "
          f"(HEARTH_KERNELS={os.environ.get('HEARTH_KERNELS', '(auto)')})\n")
    print(f"`{(env + ' ') if env else ''}{cmd}`\n")


# ---------------------------------------------------------------------------
# 1. throughput: one function per backend, each returns a Run
# ---------------------------------------------------------------------------

@dataclass
class Run:
    name: str
    seconds: float
    token_ids: List[List[int]]
    cached_tokens: Optional[int] = None  # prompt tokens served from the prefix cache
    preemptions: Optional[int] = None
    notes: List[str] = field(default_factory=list)


def run_hearth(a, prompts, warmup, max_num_seqs, name, output_len=None):
    from hearthlm import LLM

    output_len = output_len or a.output_len
    n_ctx = max(map(len, prompts)) + output_len
    # a pool big enough for every running request at full length, as vLLM
    # would size it: the run measures batching, not preemption
    kv_tokens = a.kv_cache_tokens or max_num_seqs * n_ctx
    llm = LLM(a.model, n_threads=a.threads, n_ctx=n_ctx, kv_type=a.kv_type, max_num_seqs=max_num_seqs,
              max_num_batched_tokens=a.max_num_batched_tokens, kv_cache_tokens=kv_tokens,
              enable_prefix_caching=True)  # the default; random prompts share no block anyway
    llm.generate([warmup], greedy(4), use_tqdm=False)
    t = time.perf_counter()
    outs = llm.generate(prompts, greedy(output_len), use_tqdm=False)
    seconds = time.perf_counter() - t
    s = llm.llm_engine.stats()
    return Run(name, seconds, [list(o.token_ids) for o in outs],
               cached_tokens=sum(o.num_cached_tokens for o in outs), preemptions=s["num_preemptions"],
               notes=[f"max_num_seqs {max_num_seqs}, max_num_batched_tokens {a.max_num_batched_tokens}, "
                      f"kv_cache_tokens {kv_tokens}"])


def run_llama_cpp(a, prompts, warmup):
    import llama_cpp
    from helpers import llama_cpp_ref as ref

    eb = {"on": True, "off": False}.get(a.llama_extra_bufts)
    if eb is None:
        eb = llama_cpp_extra_bufts_work(a.model, a.threads)
    llm = ref.open_llama_cpp(a.model, n_ctx=max(map(len, prompts)) + a.output_len, n_threads=a.threads,
                             kv_type=a.kv_type, logits_all=False, extra_bufts=eb, n_batch=512, n_ubatch=512)
    n_vocab = llm.n_vocab()

    def generate(ids, n):
        # reset per prompt: nothing carried over from the previous prompt
        llm.reset()
        llm.eval(ids)
        out = []
        for i in range(n):
            # with logits_all=False llama-cpp-python keeps no scores: read the
            # last row straight from the context
            row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
            out.append(int(row.argmax()))
            if i + 1 < n:
                llm.eval([out[-1]])
        return out

    generate(warmup, 4)
    t = time.perf_counter()
    token_ids = [generate(p, a.output_len) for p in prompts]
    seconds = time.perf_counter() - t
    return Run("llama.cpp", seconds, token_ids,
               notes=["one prompt at a time (llama-cpp-python has no batched generation API here), "
                      "reset per prompt, greedy argmax, n_batch 512, extra buffer types (AMX/repack) "
                      + ("on" if eb else "off")])


def section_throughput(a, n_vocab):
    lo, hi = (int(x) for x in a.input_len.split(":"))
    rng = np.random.default_rng(a.seed)
    lengths = rng.integers(lo, hi + 1, size=a.num_prompts)
    prompts = random_prompts(rng, n_vocab, lengths)
    warmup = random_prompts(np.random.default_rng(a.seed + 1), n_vocab, [32])[0]

    backends = list(dict.fromkeys(a.backends.split(",")))  # each once, in the order given
    for b in backends:
        if b not in BACKENDS:
            sys.exit(f"unknown backend {b!r} (choose from {', '.join(BACKENDS)})")
    if "llama.cpp" in backends:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            log("llama-cpp-python not importable: llama.cpp skipped")
            backends.remove("llama.cpp")

    # --rounds: every backend once per round, in turn, so that a shared
    # machine's slow minutes fall on all of them alike
    by_round = {b: [] for b in backends}
    for rnd in range(a.rounds):
        for b in backends:
            tag = f" (round {rnd + 1}/{a.rounds})" if a.rounds > 1 else ""
            log(f"throughput: {b}{tag} ...")
            if b == "hearth":
                run = run_hearth(a, prompts, warmup, a.max_num_seqs, b)
            elif b == "hearth-serial":
                run = run_hearth(a, prompts, warmup, 1, b)
            elif b == "hearth-prompts":
                run = run_hearth(a, prompts, warmup, a.max_num_seqs, b, output_len=1)
            else:
                run = run_llama_cpp(a, prompts, warmup)
            by_round[b].append(run)
            log(f"throughput: {b}{tag} {run.seconds:.1f} s")
    # each backend's median round (the lower middle one for an even count)
    runs = {b: sorted(rs, key=lambda r: r.seconds)[(len(rs) - 1) // 2] for b, rs in by_round.items()}

    n_prompt = int(lengths.sum())
    header(a, "Throughput")
    print(f"{a.num_prompts} prompts of random ids, {lo}-{hi} tokens (uniform, {n_prompt} in all), "
          f"{a.output_len} output tokens each (greedy, ignore_eos), seed {a.seed}; wall time of the whole job"
          + (f"; {a.rounds} rounds, each backend once per round in turn, each row its median round (the lower "
             "middle one of an even count; the last column divides those medians, the paired ratios follow)"
             if a.rounds > 1 else "") + "\n")
    hearth = runs.get("hearth")
    head = "| backend | elapsed s | requests/s | output tok/s | total tok/s |"
    if hearth:
        head += " hearth output tok/s ÷ this |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in runs.values():
        n_out = sum(map(len, r.token_ids))
        row = (f"| {r.name} | {r.seconds:.2f} | {len(r.token_ids) / r.seconds:.2f} | {n_out / r.seconds:.1f} | "
               f"{(n_prompt + n_out) / r.seconds:.1f} |")
        if hearth and r.name == "hearth-prompts":
            row += " (prompts only) |"
        elif hearth:
            hearth_out = sum(map(len, hearth.token_ids)) / hearth.seconds
            row += f" {hearth_out / (n_out / r.seconds):.2f} |"
        print(row)
    print()
    for r in runs.values():
        extra = []
        if r.cached_tokens is not None:
            extra.append(f"prompt tokens from the prefix cache {r.cached_tokens}")
        if r.preemptions is not None:
            extra.append(f"preemptions {r.preemptions}")
        print(f"- {r.name}: " + "; ".join(r.notes + extra))
    rounds_differ = False
    if a.rounds > 1:
        for b, rs in by_round.items():
            print(f"- {b} rounds: " + ", ".join(f"{r.seconds:.2f}" for r in rs) + " s")
        if "hearth" in by_round:
            for b, rs in by_round.items():
                if b in ("hearth", "hearth-prompts"):
                    continue
                ratios = [r.seconds / h.seconds for r, h in zip(rs, by_round["hearth"])]
                print(f"- {b}'s elapsed ÷ hearth's, round by round: " + ", ".join(f"{x:.2f}" for x in ratios)
                      + f" (median {float(np.median(ratios)):.2f}x)")
        for b, rs in by_round.items():
            if b == "llama.cpp":
                continue  # its own rounds are deterministic too, but not hearth's business here
            same = all(r.token_ids == rs[0].token_ids for r in rs[1:])
            print(f"- {b}: every round's token ids " + ("the same" if same else "NOT the same (a bug: greedy is "
                                                                              "deterministic)"))
            rounds_differ = rounds_differ or not same
    if "hearth" in runs and "hearth-serial" in runs:
        print("- " + compare(runs["hearth"], runs["hearth-serial"], "batch invariance"))
    if "hearth-prompts" in runs and "hearth-serial" in runs:
        bound = runs["hearth-serial"].seconds / runs["hearth-prompts"].seconds
        line = (f"- the most batching could gain on this job if decode cost nothing: hearth-serial's "
                f"elapsed ÷ hearth-prompts' = {bound:.2f}x")
        if hearth:
            line += f" (hearth's elapsed gives {runs['hearth-serial'].seconds / hearth.seconds:.2f}x)"
        print(line)
    if "hearth" in runs and "llama.cpp" in runs:
        print("- " + compare(runs["hearth"], runs["llama.cpp"],
                             "different kernels and rounding: not expected to match everywhere"))
    if rounds_differ:
        sys.exit("throughput: a backend's rounds gave different token ids")


def compare(x, y, why):
    """One line: do two runs give the same token ids for every prompt?"""
    diff = [i for i, (p, q) in enumerate(zip(x.token_ids, y.token_ids)) if p != q]
    n = len(x.token_ids)
    if not diff:
        return f"{x.name} and {y.name} token ids: identical for all {n} prompts ({why})"
    i = diff[0]
    j = next((k for k, (p, q) in enumerate(zip(x.token_ids[i], y.token_ids[i])) if p != q),
             min(len(x.token_ids[i]), len(y.token_ids[i])))
    return (f"{x.name} and {y.name} token ids: identical for {n - len(diff)}/{n} prompts; "
            f"first difference at prompt {i}, output token {j} ({why})")


# ---------------------------------------------------------------------------
# 2. decode curve
# ---------------------------------------------------------------------------

def section_curve(a, n_vocab):
    from batched_decode import HearthBatched, LlamaCppBatched

    ns = sorted({int(x) for x in a.curve.split(",")})
    if a.curve_tokens < 2:
        sys.exit("--curve-tokens must be at least 2 (the first token comes with the prefill)")
    n_ctx = a.curve_prompt_len + a.curve_tokens
    # one engine for every row (fresh random prompts per row share nothing
    # with the rows before)
    hearth = HearthBatched(a.model, a.threads, a.kv_type, max(ns), a.curve_prompt_len, n_ctx)
    rng = np.random.default_rng(a.seed + 2)
    hearth.run(random_prompts(rng, n_vocab, [32]), 4)  # warm-up
    prompts_by_n = {n: random_prompts(rng, n_vocab, [a.curve_prompt_len] * n) for n in ns}

    rows = []
    for n in ns:
        log(f"curve: {n} sequences ...")
        rows.append((n, *hearth.run(prompts_by_n[n], a.curve_tokens)))
    del hearth

    llama_rows = None
    if "llama.cpp" in a.backends.split(","):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            log("curve: llama_cpp not installed, hearth only")
        else:
            eb = {"on": True, "off": False}.get(a.llama_extra_bufts)
            if eb is None:
                eb = llama_cpp_extra_bufts_work(a.model, a.threads)
            llama = LlamaCppBatched(a.model, a.threads, a.kv_type, max(ns), max(ns) * n_ctx, eb)
            llama_rows = {}
            for n in ns:
                log(f"curve: llama.cpp {n} sequences ...")
                produced, seconds = llama.run(prompts_by_n[n], a.curve_tokens)
                llama_rows[n] = produced / seconds
            del llama

    header(a, "Decode throughput by concurrency")
    print(f"N concurrent sequences, each a {a.curve_prompt_len}-token random prompt generating "
          f"{a.curve_tokens} tokens (greedy); LLMEngine stepped until every sequence has its first token, "
          f"then the remaining steps timed")
    if llama_rows:
        print("; llama.cpp the same prompts as N sequences of one context (n_seq_max N, unified KV cache), "
              "each step one llama_decode of N rows (llama-batched-bench's shape)")
    print()
    extra = " llama.cpp aggregate tok/s | hearth / llama.cpp |" if llama_rows else ""
    print("| sequences | decode tokens | seconds | aggregate decode tok/s | per sequence tok/s | efficiency |" + extra)
    print("|---|---|---|---|---|---|" + ("---|---|" if llama_rows else ""))
    single = next((p / s for n, p, s in rows if n == 1), None)
    for n, p, s in rows:
        eff = f"{p / s / (n * single):.2f}" if single else "n/a (no N=1 row)"
        line = f"| {n} | {p} | {s:.2f} | {p / s:.1f} | {p / s / n:.1f} | {eff} |"
        if llama_rows:
            line += f" {llama_rows[n]:.1f} | {p / s / llama_rows[n]:.2f} |"
        print(line)
    print("\nefficiency = aggregate / (N × the one-sequence rate)")


# ---------------------------------------------------------------------------
# 3. KV memory of a shared prefix
# ---------------------------------------------------------------------------

def run_memory(a, prompts, n_ctx):
    """Adds every request at once, steps to the end; (peak blocks, block bytes, final stats)."""
    from hearthlm import LLMEngine

    eng = LLMEngine(a.model, n_threads=a.threads, n_ctx=n_ctx, kv_type=a.kv_type,
                    max_num_seqs=len(prompts), max_num_batched_tokens=a.max_num_batched_tokens,
                    kv_cache_tokens=len(prompts) * n_ctx, enable_prefix_caching=True)
    for i, p in enumerate(prompts):
        eng.add_request(f"mem{i}", p, greedy(a.memory_output_len))
    peak = 0
    while eng.has_unfinished_requests():
        eng.step()
        peak = max(peak, eng.stats()["kv_blocks_used"])
    return peak, eng._engine.kv_block_bytes, eng.stats()


def section_memory(a, n_vocab):
    n_req = 16
    rng = np.random.default_rng(a.seed + 3)
    own = rng.integers(16, 33, size=n_req)  # each request's own tail: 16-32 tokens
    prefix = random_prompts(rng, n_vocab, [a.prefix_len])[0]
    shared = [prefix + tail for tail in random_prompts(rng, n_vocab, own)]
    alone = random_prompts(rng, n_vocab, [len(p) for p in shared])  # same lengths, nothing in common
    n_ctx = a.prefix_len + 32 + a.memory_output_len

    rows = []
    for name, prompts in (("shared prefix", shared), ("nothing shared", alone)):
        log(f"memory: {name} ...")
        rows.append((name,) + run_memory(a, prompts, n_ctx))

    header(a, "KV memory of a shared prefix")
    print(f"{n_req} requests added at once, prompts of {a.prefix_len} + 16-32 tokens "
          f"({sum(map(len, shared))} in all), {a.memory_output_len} output tokens each; LLMEngine "
          f"max_num_seqs {n_req}, kv_cache_tokens {n_req * n_ctx}; peak of stats()['kv_blocks_used'] "
          f"after each step\n")
    print("| prompts | peak KV blocks | peak KV MiB | prefix cache hits / queries (tokens) | preemptions |")
    print("|---|---|---|---|---|")
    for name, peak, block_bytes, s in rows:
        print(f"| {name} | {peak} | {peak * block_bytes / MiB:.1f} | "
              f"{s['prefix_cache_hits']} / {s['prefix_cache_queries']} | {s['num_preemptions']} |")
    if rows[0][1]:
        print(f"\nnothing shared / shared prefix: {rows[1][1] / rows[0][1]:.2f}× the KV blocks "
              f"({rows[0][2]} bytes per block of 16 tokens)")


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", metavar="MODEL.gguf")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv-type", choices=("f16", "f32", "q8_0"), default="f16", help="every engine (default f16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS))
    # throughput
    ap.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated subset of " + ",".join(BACKENDS))
    ap.add_argument("--num-prompts", type=int, default=64)
    ap.add_argument("--input-len", default="64:512", metavar="LO:HI", help="prompt lengths, uniform (default 64:512)")
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--max-num-seqs", type=int, default=16, help="hearth's running requests (default 16)")
    ap.add_argument("--max-num-batched-tokens", type=int, default=512, help="hearth's rows per step (default 512)")
    ap.add_argument("--kv-cache-tokens", type=int, default=None,
                    help="hearth's KV pool for the throughput runs (default: max_num_seqs x the longest request)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every throughput backend this many times, in turn, and report medians and each "
                         "round's ratio (default 1)")
    ap.add_argument("--llama-extra-bufts", choices=("auto", "on", "off"), default="auto",
                    help="llama.cpp's AMX/repacked weight layouts (auto: probe in a subprocess)")
    # curve
    ap.add_argument("--curve", default="1,2,4,8,16", help="concurrent sequences per row")
    ap.add_argument("--curve-tokens", type=int, default=64, help="tokens generated per sequence")
    ap.add_argument("--curve-prompt-len", type=int, default=64)
    # memory
    ap.add_argument("--prefix-len", type=int, default=500, help="the shared prefix (default 500 tokens)")
    ap.add_argument("--memory-output-len", type=int, default=32)
    a = ap.parse_args(argv)

    from hearthlm import LLM

    if a.rounds < 1:
        ap.error("--rounds must be at least 1")
    sections = a.sections.split(",")
    for s in sections:
        if s not in SECTIONS:
            ap.error(f"unknown section {s!r} (choose from {', '.join(SECTIONS)})")
    n_vocab = LLM(a.model, n_threads=a.threads, n_ctx=16, kv_cache_tokens=16).n_vocab
    if "throughput" in sections:
        section_throughput(a, n_vocab)
    if "curve" in sections:
        section_curve(a, n_vocab)
    if "memory" in sections:
        section_memory(a, n_vocab)


if __name__ == "__main__":
    main()
