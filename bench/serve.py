"""Serving benchmark: hearth-server against llama-cpp-python's server
(`python -m llama_cpp.server`) on the same GGUF file, threads and load.

For each number of concurrent clients (1, 2, 4, 8, 16), every client sends
streamed /v1/completions requests one after another: random-word prompts of
mixed lengths and mixed output lengths (fixed --seed), greedy, the end token
banned so that both servers generate max_tokens (hearth: ignore_eos;
llama.cpp: logit_bias; the table says what fraction of max_tokens arrived).
Reported per server and load: output tokens/s of the whole run (wall clock,
tokens counted as they stream in), time to first token and the time between
tokens (p50 / p99 over every request / interval), and hearth's tokens/s over
llama.cpp's. llama-cpp-python's server runs one request at a time (its own
lock; started with --interrupt_requests False so that a new request does not
cut the one streaming): that is the comparison, not a handicap we add. Then
the prefix cache on hearth (--prefix-words).

The VM this was written on changes speed by a quarter from one minute to the
next: --rounds N runs the whole sweep of client counts N times, interleaved,
and reports for each load its median round (tokens/s of every round listed)
and the median over rounds of each round's ratio to its own one-client run.
Each round draws its own prompts (seed + clients + 1000 x round): the same
prompts again would be served from the prefix cache.

    PYTHONPATH=python python bench/serve.py MODEL.gguf --threads 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import List, Optional

import urllib.error
import urllib.request

# The load generator runs on the server's own CPUs here, so it should cost as
# little as it can: aiohttp (vLLM's benchmark_serving uses it too) reads a
# streamed token for about a quarter of httpx's CPU time on this VM.
import aiohttp

WORDS = ("time river stone market bread apple winter light house field story north garden letter music "
         "window morning paper forest road summer table voice child friend water night city mountain").split()


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Server:
    """A server process on a free port, stopped with Ctrl-C."""

    def __init__(self, name: str, cmd: List[str], url_pattern: str, ready_path: str, env=None):
        self.name = name
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url: Optional[str] = None
        deadline = time.monotonic() + 120
        lines = []
        while time.monotonic() < deadline and self.url is None:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(url_pattern, line)
            if m:
                self.url = m.group(1)
        if self.url is None:
            self.stop()
            raise RuntimeError(f"{name} did not start:\n{''.join(lines)[-3000:]}")
        # its later output is read and dropped, so that the pipe never fills
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        for _ in range(600):  # until it answers
            try:
                with urllib.request.urlopen(self.url + ready_path, timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} does not answer at {self.url}{ready_path}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_hearth(model: str, threads: int, n_ctx: int, max_num_seqs: int) -> Server:
    return Server("hearth", [sys.executable, "-m", "hearthlm.server", "-m", model, "-t", str(threads), "-c", str(n_ctx),
                             "--max-num-seqs", str(max_num_seqs), "--port", "0", "--served-model-name", "m"],
                  r"at (http://[\d.]+:\d+)", "/health")


def start_llama(model: str, threads: int, n_ctx: int) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--n_threads", str(threads),
           "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx), "--port", str(port), "--host", "127.0.0.1",
           "--model_alias", "m", "--interrupt_requests", "False"]
    return Server("llama.cpp", cmd, r"Uvicorn running on (http://[\d.]+:\d+)", "/v1/models")


def make_load(n: int, seed: int, prompt_words: tuple, out_tokens: tuple) -> List[tuple]:
    rng = random.Random(seed)
    return [(" ".join(rng.choice(WORDS) for _ in range(rng.randint(*prompt_words))), rng.randint(*out_tokens))
            for _ in range(n)]


def session() -> aiohttp.ClientSession:
    # no connection limit: every client of a load streams at once
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600),
                                 connector=aiohttp.TCPConnector(limit=0))


async def one_request(client: aiohttp.ClientSession, server: Server, eos: int, prompt: str, max_tokens: int) -> dict:
    body = {"model": "m", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    if server.name == "hearth":
        body["ignore_eos"] = True
    else:
        body["logit_bias"] = {str(eos): -100}
    sent = time.perf_counter()
    times, tokens = [], 0
    async with client.post(server.url + "/v1/completions", json=body) as r:
        r.raise_for_status()
        async for raw in r.content:  # one SSE line at a time
            line = raw.decode().rstrip("\r\n")
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                times.append(time.perf_counter())
                tokens += 1
    return {"ttft": times[0] - sent if times else None, "gaps": [b - a for a, b in zip(times, times[1:])],
            "chunks": tokens, "max_tokens": max_tokens, "seconds": time.perf_counter() - sent}


async def run_load(server: Server, eos: int, clients: int, load: List[tuple]) -> dict:
    queue = list(load)
    results = []

    async def client_loop(client):
        while queue:
            prompt, n = queue.pop(0)
            results.append(await one_request(client, server, eos, prompt, n))

    async with session() as client:
        start = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        wall = time.perf_counter() - start
    ttft = sorted(r["ttft"] for r in results if r["ttft"] is not None)
    gaps = sorted(g for r in results for g in r["gaps"])
    out_tokens = sum(r["chunks"] for r in results)  # one streamed piece per token (ASCII words, no stop strings)
    return {"clients": clients, "requests": len(results), "wall": wall, "tokens": out_tokens,
            "tok_s": out_tokens / wall, "ttft_p50": pct(ttft, 50), "ttft_p99": pct(ttft, 99),
            "itl_p50": pct(gaps, 50), "itl_p99": pct(gaps, 99),
            "complete": sum(r["chunks"] for r in results) / sum(r["max_tokens"] for r in results)}


async def shared_prefix(server: Server, requests: int, prefix_words: int, seed: int) -> dict:
    """requests concurrent chats behind one long system prompt, then as many
    with system prompts of the same length that share nothing: the prompt
    tokens the prefix cache served, and the most KV blocks in use at once
    (hearth's /metrics gauge, polled every 10 ms)."""
    rng = random.Random(seed)

    def system():
        return " ".join(rng.choice(WORDS) for _ in range(prefix_words))

    async def run(systems):
        peak = 0
        done = asyncio.Event()

        async def poll(client):
            nonlocal peak
            while not done.is_set():
                async with client.get(server.url + "/metrics") as r:
                    text = await r.text()
                m = re.search(r"^hearth:kv_blocks_used\{[^}]*\} (\S+)$", text, re.M)
                peak = max(peak, int(float(m.group(1))))
                await asyncio.sleep(0.01)

        async def ask(client, sys_prompt, i):
            body = {"model": "m", "max_tokens": 32, "temperature": 0,
                    "messages": [{"role": "system", "content": sys_prompt},
                                 {"role": "user", "content": f"Question {i}: name a colour."}]}
            async with client.post(server.url + "/v1/chat/completions", json=body) as r:
                r.raise_for_status()
                return (await r.json())["usage"]

        async with session() as client:
            poller = asyncio.create_task(poll(client))
            usages = await asyncio.gather(*(ask(client, sp, i) for i, sp in enumerate(systems)))
            done.set()
            await poller
        return {"prompt_tokens": sum(u["prompt_tokens"] for u in usages),
                "cached_tokens": sum(u["prompt_tokens_details"]["cached_tokens"] for u in usages), "peak_blocks": peak}

    shared = system()
    return {"shared": await run([shared] * requests), "unshared": await run([system() for _ in range(requests)])}


def median_round(runs: List[dict]) -> dict:
    """The round whose output tokens/s is the median (the lower one of the
    middle two for an even count)."""
    return sorted(runs, key=lambda r: r["tok_s"])[(len(runs) - 1) // 2]


def pct(xs: List[float], p: float) -> float:
    if not xs:
        return float("nan")
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", default="1,2,4,8,16")
    ap.add_argument("--requests-per-client", type=int, default=2,
                    help="requests in a load = clients x this (at least --min-requests)")
    ap.add_argument("--min-requests", type=int, default=8)
    ap.add_argument("--prompt-words", default="20:200", help="prompt length range in words (LO:HI)")
    ap.add_argument("--output-tokens", default="32:128", help="output length range in tokens (LO:HI)")
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--backends", default="hearth,llama.cpp")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--prefix-words", type=int, default=400,
                    help="the shared system prompt of the prefix-cache section, in words (0: skip it)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the sweep of client counts this many times, interleaved; report medians")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    lo, hi = (int(x) for x in args.prompt_words.split(":"))
    olo, ohi = (int(x) for x in args.output_tokens.split(":"))
    clients = [int(c) for c in args.clients.split(",")]
    from hearthlm import LLM, _core
    eos = LLM(args.model, vocab_only=True).get_tokenizer().eos_token_id
    rows = {}
    prefix = None
    for backend in args.backends.split(","):
        print(f"starting {backend} ...", file=sys.stderr)
        server = (start_hearth(args.model, args.threads, args.n_ctx, max(clients)) if backend == "hearth"
                  else start_llama(args.model, args.threads, args.n_ctx))
        try:
            asyncio.run(run_load(server, eos, 1, make_load(1, 999, (lo, lo), (8, 8))))  # warm up
            for round_ in range(args.rounds):
                for c in clients:
                    # a new draw each round: the same prompts again would come from the prefix cache
                    load = make_load(max(args.min_requests, c * args.requests_per_client),
                                     args.seed + c + 1000 * round_, (lo, hi), (olo, ohi))
                    print(f"{backend}: round {round_ + 1}/{args.rounds}, {c} clients, {len(load)} requests ...",
                          file=sys.stderr)
                    rows.setdefault((backend, c), []).append(asyncio.run(run_load(server, eos, c, load)))
            if backend == "hearth" and args.prefix_words:
                print("hearth: shared prefix ...", file=sys.stderr)
                prefix = asyncio.run(shared_prefix(server, 16, args.prefix_words, args.seed))
        finally:
            server.stop()
    kernels = os.environ.get("HEARTH_KERNELS") or _core.kernel_name()
    print(f"### Serving: `{Path(args.model).name}`, {args.threads} threads, n_ctx {args.n_ctx}; {cpu_name()}; "
          f"hearth kernels {kernels}\n")
    print(f"`PYTHONPATH=python python bench/serve.py {' '.join(sys.argv[1:])}`\n")
    print(f"Each client sends streamed /v1/completions one after another: prompts of {lo}-{hi} random words, "
          f"{olo}-{ohi} output tokens (greedy, end token banned), seed {args.seed}; "
          f"requests per load = max({args.min_requests}, clients x {args.requests_per_client}).\n")
    rounds_col = " output tok/s of each round |" if args.rounds > 1 else ""
    print("| server | clients | requests | tokens / max_tokens | output tok/s | TTFT p50 s | TTFT p99 s | ITL p50 ms "
          "| ITL p99 ms | hearth ÷ llama.cpp |" + rounds_col)
    print("|---" * (10 + (args.rounds > 1)) + "|")
    median = {key: median_round(runs) for key, runs in rows.items()}
    for (backend, c), r in median.items():
        ratio = ""
        if backend == "hearth" and ("llama.cpp", c) in median:
            ratio = f"{r['tok_s'] / median[('llama.cpp', c)]['tok_s']:.2f}"
        line = (f"| {backend} | {c} | {r['requests']} | {r['complete']:.3f} | {r['tok_s']:.1f} | {r['ttft_p50']:.3f} | "
                f"{r['ttft_p99']:.3f} | {1000 * r['itl_p50']:.1f} | {1000 * r['itl_p99']:.1f} | {ratio} |")
        if rounds_col:
            line += " " + " / ".join(f"{x['tok_s']:.1f}" for x in rows[(backend, c)]) + " |"
        print(line)
    if args.rounds > 1:
        print(f"\n{args.rounds} rounds; each row is its load's median round by output tokens/s.")
    if ("hearth", 1) in rows:
        ones = rows[("hearth", 1)]
        parts = []
        for c in clients:
            if ("hearth", c) not in rows or c == 1:
                continue
            per_round = [r["tok_s"] / one["tok_s"] for r, one in zip(rows[("hearth", c)], ones)]
            part = f"{c} clients {statistics.median(per_round):.2f}x"
            if len(per_round) > 1:
                part += " (rounds: " + ", ".join(f"{x:.2f}" for x in per_round) + ")"
            parts.append(part)
        print("\nhearth aggregate tok/s over one client's in the same round" +
              (", median over rounds" if args.rounds > 1 else "") + ": " + "; ".join(parts))
    if prefix:
        sh, un = prefix["shared"], prefix["unshared"]
        print(f"\nShared prefix (hearth): 16 concurrent chats behind one system prompt of {args.prefix_words} words "
              f"({sh['prompt_tokens'] // 16} prompt tokens each) vs 16 with unshared system prompts of the same length:\n")
        print("| prompts | prompt tokens | from the prefix cache | peak KV blocks in use |")
        print("|---|---|---|---|")
        for name, r in (("shared", sh), ("unshared", un)):
            print(f"| {name} | {r['prompt_tokens']} | {r['cached_tokens']} | {r['peak_blocks']} |")
    if args.json:
        out = {f"{b}/{c}": runs for (b, c), runs in rows.items()}
        if prefix:
            out["prefix"] = prefix
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
