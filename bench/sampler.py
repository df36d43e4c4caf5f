"""Sampler speed: the time of one sampled token, hearth's C++ sampler against
transformers' logits warpers with torch.multinomial, on the same rows of
real logits, one thread each.

The rows are the model's logits after a short prompt (`LLM.eval`), so the
distributions are a real model's. Each setting runs --draws draws per row
and reports microseconds per draw (the best of --reps; the row is copied
before each draw, as the engine hands the sampler a fresh row).

    PYTHONPATH=python python bench/sampler.py MODEL.gguf

With --engine N it also runs an LLMEngine with N sequences in flight (3 x N
requests: prompts of 10-40 random words, 64-256 generated tokens each, the
end token ignored) for each setting and greedy, and reports output tokens/s:
what the sampler's cost means for a whole step.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

from hearthlm import LLM, _core

SETTINGS = [
    ("temperature 1.0 (the OpenAI API's default)", dict(temperature=1.0)),
    ("temperature 0.8, top_p 0.95", dict(temperature=0.8, top_p=0.95)),
    ("temperature 0.8, top_p 0.5", dict(temperature=0.8, top_p=0.5)),
    ("temperature 0.7, min_p 0.05", dict(temperature=0.7, min_p=0.05)),
    ("temperature 0.8, top_k 40, top_p 0.95, min_p 0.05 (llama.cpp's defaults)",
     dict(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05)),
]


def hearth_us(rows, kw, draws, reps) -> float:
    sp = _core.SamplingParams()
    for k, v in kw.items():
        setattr(sp, k, v)
    sp.seed = 1
    s = _core.testing.Sampler(sp)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for r in rows:
            s.sample_many(r, draws)
        best = min(best, (time.perf_counter() - t) / (len(rows) * draws))
    return best * 1e6


def torch_us(rows, kw, draws, reps):
    try:
        import torch
        from transformers.generation.logits_process import (LogitsProcessorList, MinPLogitsWarper,
                                                            TemperatureLogitsWarper, TopKLogitsWarper,
                                                            TopPLogitsWarper)
    except ImportError:
        return None
    torch.set_num_threads(1)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(kw["temperature"])])
    if kw.get("top_k"):
        warpers.append(TopKLogitsWarper(kw["top_k"]))
    if kw.get("top_p", 1.0) < 1.0:
        warpers.append(TopPLogitsWarper(kw["top_p"]))
    if kw.get("min_p"):
        warpers.append(MinPLogitsWarper(kw["min_p"]))
    gen = torch.Generator().manual_seed(1)
    trows = [torch.from_numpy(r).unsqueeze(0) for r in rows]
    best = float("inf")
    with torch.no_grad():
        for _ in range(reps):
            t = time.perf_counter()
            for r in trows:
                for _ in range(draws):
                    scores = warpers(None, r.clone())
                    torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=gen)
            best = min(best, (time.perf_counter() - t) / (len(trows) * draws))
    return best * 1e6


WORDS = ("time river stone market bread apple winter light house field story north garden letter music "
         "window morning paper forest road summer table voice child friend water night city mountain").split()


def engine_tokens_per_s(model, threads, in_flight, kw, seed=7) -> float:
    """Output tokens/s of an LLMEngine keeping in_flight requests running."""
    import random

    from hearthlm import LLMEngine, SamplingParams

    rng = random.Random(seed)
    load = [(" ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 40))), rng.randint(64, 256))
            for _ in range(3 * in_flight)]
    engine = LLMEngine(model, n_threads=threads, n_ctx=2048, max_num_seqs=max(1, in_flight))
    queue, running, k = list(load), 0, 0
    start = time.perf_counter()
    while queue or engine.has_unfinished_requests():
        while queue and running < in_flight:
            prompt, n = queue.pop(0)
            engine.add_request(str(k), prompt, SamplingParams(max_tokens=n, ignore_eos=True, seed=k, **kw))
            k, running = k + 1, running + 1
        running -= sum(o.finished for o in engine.step())
    return sum(n for _, n in load) / (time.perf_counter() - start)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a GGUF file (its logits are the rows)")
    ap.add_argument("--rows", type=int, default=5, help="rows of logits: the last positions of the prompt")
    ap.add_argument("--draws", type=int, default=20, help="draws per row and repetition")
    ap.add_argument("--reps", type=int, default=15, help="repetitions; the best is reported")
    ap.add_argument("--engine", type=int, default=0, metavar="N",
                    help="also time an LLMEngine with N sequences in flight per setting (0: no)")
    ap.add_argument("--threads", type=int, default=2, help="the engine's threads (with --engine)")
    args = ap.parse_args()
    llm = LLM(args.model, n_ctx=512)
    ids = llm.tokenize("time river stone market bread apple winter light house field story north garden letter")
    rows = [r.astype(np.float32) for r in llm.eval(ids)[-args.rows:]]
    print(f"### Sampler: `{args.model.rsplit('/', 1)[-1]}`, vocabulary {rows[0].size}; {platform.processor() or platform.machine()}; "
          f"hearth kernels {_core.kernel_name()}\n")
    print(f"`PYTHONPATH=python python bench/sampler.py {' '.join(sys.argv[1:])}`\n")
    print("| setting | hearth µs per draw | transformers + torch µs per draw | torch ÷ hearth |")
    print("|---|---|---|---|")
    for name, kw in SETTINGS:
        h = hearth_us(rows, kw, args.draws, args.reps)
        t = torch_us(rows, kw, args.draws, max(3, args.reps // 3))
        print(f"| {name} | {h:.0f} | {'' if t is None else f'{t:.0f}'} | {'' if t is None else f'{t / h:.2f}'} |")
    if args.engine:
        print(f"\n`LLMEngine`, {args.engine} sequences in flight, {args.threads} threads:\n")
        print("| setting | output tokens/s |")
        print("|---|---|")
        for name, kw in [("greedy", dict(temperature=0.0))] + SETTINGS:
            print(f"| {name} | {engine_tokens_per_s(args.model, args.threads, args.engine, kw):.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
