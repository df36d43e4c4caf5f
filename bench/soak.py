#!/usr/bin/env python3
"""A soak of the Python API: many short `LLM.generate` / `LLM.chat` requests
on one LLM, watching for leaks.

    PYTHONPATH=python python bench/soak.py MODEL.gguf [--requests 10000] [--threads 2]

Requests come in calls of 1 to 16 prompts with mixed parameters (greedy,
seeded sampling, n=2, stop strings, logprobs, beam search, chats) and a few
invalid ones mixed in that must be refused with a HearthError / ValueError.
Every valid request must finish ("stop" or "length"); after each call the
engine must hold no KV block beyond what it held at the start. Prints the
resident memory every --report requests and, at the end, the growth of its
anonymous part (heap and KV cache; the mapped model file's pages grow apart
from any leak, as new tokens are first read) after the warm-up (prompts
filling the whole KV pool once, then the first tenth of the run) and a verdict. Exit 1 on any error,
leaked block or growth above --max-growth-mib.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from hearthlm import LLM, HearthError, SamplingParams

WORDS = "the a river stone market bread apple winter light house field story north garden letter".split()


def rss_mib(kind: str = "VmRSS") -> float:
    """Resident memory (kB lines of /proc/self/status): VmRSS in all, or
    RssAnon (heap, KV cache: where a leak would show) or RssFile (pages of the
    mapped model file, which grow as new tokens' embedding rows are first
    read, up to the file's size, and which the kernel may drop at will)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(kind + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {kind} in /proc/self/status")


def memory_line() -> str:
    return (f"RSS {rss_mib():.1f} MiB (anonymous {rss_mib('RssAnon'):.1f}, "
            f"mapped model file {rss_mib('RssFile'):.1f})")


def random_params(rng: random.Random) -> SamplingParams:
    kind = rng.random()
    max_tokens = rng.randint(1, 12)
    if kind < 0.3:
        return SamplingParams(temperature=0, max_tokens=max_tokens)
    if kind < 0.6:
        return SamplingParams(temperature=0.8, top_p=0.9, seed=rng.randint(0, 999), max_tokens=max_tokens)
    if kind < 0.75:
        return SamplingParams(temperature=1.0, n=2, seed=rng.randint(0, 999), max_tokens=max_tokens)
    if kind < 0.85:
        return SamplingParams(temperature=0.7, stop=[" the", "."], seed=rng.randint(0, 999), max_tokens=max_tokens,
                              logprobs=2)
    if kind < 0.9:
        return SamplingParams(num_beams=2, max_tokens=max_tokens)
    return SamplingParams(temperature=0.5, top_k=20, repetition_penalty=1.1, seed=rng.randint(0, 999),
                          max_tokens=max_tokens)


INVALID = [
    lambda llm: llm.generate("hi", SamplingParams(temperature=-1)),
    lambda llm: llm.generate("hi", SamplingParams(max_tokens=10 ** 30)),
    lambda llm: llm.generate("word " * (llm.llm_engine.n_ctx + 10), SamplingParams(max_tokens=2)),
    lambda llm: llm.generate("", SamplingParams(max_tokens=2)),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n-ctx", type=int, default=512)
    ap.add_argument("--report", type=int, default=1000, help="print memory every this many requests")
    ap.add_argument("--max-growth-mib", type=float, default=8.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = random.Random(args.seed)
    llm = LLM(args.model, n_threads=args.threads, n_ctx=args.n_ctx)
    blocks_at_start = llm.llm_engine.stats()["kv_blocks_used"]
    # warm-up: every page of the KV pool touched once (its pages are committed
    # only when first used), so that filling it cannot pass for a leak
    pool_tokens = llm.llm_engine.stats()["kv_blocks_total"] * 16
    n_fill = max(1, pool_tokens // (args.n_ctx - 16))
    fill = [" ".join(rng.choices(WORDS, k=args.n_ctx - 32)) for _ in range(n_fill)]
    llm.generate(fill, SamplingParams(max_tokens=8, temperature=0, ignore_eos=True), use_tqdm=False)
    done = refused = errors = leaked = 0
    finishes = {}
    warm_rss = None
    next_report = args.report
    t0 = time.monotonic()
    print(f"soak: {args.model}, {args.requests} requests, {args.threads} threads; at start {memory_line()}")
    while done < args.requests:
        if rng.random() < 0.02:  # an invalid request: refused, and nothing held afterwards
            try:
                rng.choice(INVALID)(llm)
                errors += 1
                print("an invalid request was accepted", file=sys.stderr)
            except (HearthError, ValueError):
                refused += 1
        else:
            n = min(rng.choice([1, 1, 2, 4, 8, 16]), args.requests - done)
            params = random_params(rng)
            try:
                if rng.random() < 0.2:
                    convs = [[{"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(1, 20)))}]
                             for _ in range(n)]
                    outs = llm.chat(convs, params, use_tqdm=False)
                else:
                    prompts = [" ".join(rng.choices(WORDS, k=rng.randint(1, 40))) for _ in range(n)]
                    outs = llm.generate(prompts, params, use_tqdm=False)
            except Exception as e:  # a valid request failed: the soak's finding
                errors += 1
                print(f"request failed: {type(e).__name__}: {e}", file=sys.stderr)
                outs = []
            for o in outs:
                for c in o.outputs:
                    finishes[c.finish_reason] = finishes.get(c.finish_reason, 0) + 1
            done += n
        held = llm.llm_engine.stats()["kv_blocks_used"]
        if held != blocks_at_start:
            leaked += 1
            print(f"after {done} requests the engine holds {held} KV blocks (at start: {blocks_at_start})",
                  file=sys.stderr)
        if warm_rss is None and done >= args.requests // 10:
            warm_rss = rss_mib("RssAnon")
        if done >= next_report:
            print(f"  {done:6d} requests  {time.monotonic() - t0:7.1f} s  {memory_line()}", flush=True)
            next_report += args.report
    end_rss = rss_mib("RssAnon")
    growth = end_rss - (warm_rss if warm_rss is not None else end_rss)
    bad_finish = {k: v for k, v in finishes.items() if k not in ("stop", "length")}
    ok = errors == 0 and leaked == 0 and not bad_finish and growth <= args.max_growth_mib
    print(f"soak: {done} requests in {time.monotonic() - t0:.1f} s; {refused} invalid ones refused; "
          f"finish reasons {finishes}; errors {errors}; calls leaving KV blocks held {leaked}; "
          f"anonymous RSS after warm-up {warm_rss:.1f} MiB -> end {end_rss:.1f} MiB (growth {growth:+.1f} MiB); "
          f"at the end {memory_line()}: "
          f"{'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
