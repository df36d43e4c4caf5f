"""A load run against hearth-server, loopback only, bounded in count and
time: 32 clients with random lengths, streams cancelled mid-way and
malformed requests mixed in. Every valid request must succeed, nothing may
crash, every KV block must come back and the resident memory must stay
flat. HEARTH_LOAD_SECONDS sets the length (default 20 s in the suite; the
closing figures of issue 11 come from a run of a few minutes)."""

from __future__ import annotations

import asyncio
import json
import os
import random

import pytest

pytest.importorskip("fastapi", reason="the server needs its extra (pip install '.[server]')")
httpx = pytest.importorskip("httpx")
psutil = pytest.importorskip("psutil")

from helpers.server_process import ServerProcess  # noqa: E402
from test_server import http, metric, wait_idle  # noqa: E402

SECONDS = float(os.environ.get("HEARTH_LOAD_SECONDS", "20"))
CLIENTS = 32
WORDS = "the a river stone market bread apple winter light house field story north garden letter".split()


def prompt(rng: random.Random, lo=3, hi=300) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))


MALFORMED = [
    ("/v1/completions", b"{not json"),
    ("/v1/completions", json.dumps({"prompt": "x", "temperature": -3}).encode()),
    ("/v1/completions", json.dumps({"prompt": "x", "model": "no-such-model"}).encode()),
    ("/v1/completions", json.dumps({"prompt": "word " * 5000}).encode()),
    ("/v1/chat/completions", json.dumps({"messages": "not a list"}).encode()),
    ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}], "n": 0}).encode()),
    ("/v1/chat/completions", json.dumps({"messages": [{"role": "user", "content": "hi"}],
                                         "response_format": {"type": "json_schema", "json_schema": {}}}).encode()),
]


async def client_loop(i: int, url: str, deadline: float, tally: dict):
    rng = random.Random(1000 + i)
    async with httpx.AsyncClient(base_url=url, timeout=300) as c:
        while asyncio.get_running_loop().time() < deadline:
            roll = rng.random()
            if roll < 0.15:  # malformed: a 4xx, never a 5xx
                path, body = rng.choice(MALFORMED)
                r = await c.post(path, content=body, headers={"Content-Type": "application/json"})
                assert 400 <= r.status_code < 500, (r.status_code, r.text)
                tally["malformed"] += 1
            elif roll < 0.30:  # a stream the client walks away from
                body = {"prompt": prompt(rng), "max_tokens": 400, "ignore_eos": True, "stream": True}
                async with c.stream("POST", "/v1/completions", json=body) as r:
                    assert r.status_code == 200
                    wanted = rng.randint(1, 10)
                    async for line in r.aiter_lines():
                        if line.startswith("data: "):
                            wanted -= 1
                            if wanted == 0:
                                break
                tally["cancelled"] += 1
            elif roll < 0.65:  # a streamed chat
                body = {"messages": [{"role": "user", "content": prompt(rng, 1, 60)}], "max_tokens": rng.randint(1, 96),
                        "temperature": rng.choice([0, 0.8]), "seed": rng.randint(0, 99), "stream": True}
                finishes = 0
                async with c.stream("POST", "/v1/chat/completions", json=body) as r:
                    assert r.status_code == 200
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            chunk = json.loads(line[6:])
                            assert "error" not in chunk, chunk
                            finishes += sum(ch["finish_reason"] is not None for ch in chunk["choices"])
                assert finishes == 1
                tally["ok"] += 1
            else:  # a whole completion
                n = rng.choice([1, 1, 2])
                body = {"prompt": prompt(rng), "max_tokens": rng.randint(1, 96), "n": n, "temperature": 0.7,
                        "seed": rng.randint(0, 99)}
                r = await c.post("/v1/completions", json=body)
                assert r.status_code == 200, r.text
                j = r.json()
                assert len(j["choices"]) == n and all(ch["finish_reason"] in ("stop", "length") for ch in j["choices"])
                tally["ok"] += 1


async def fill_kv_pool(url: str, rng: random.Random):
    async with httpx.AsyncClient(base_url=url, timeout=300) as c:
        async def one():
            body = {"prompt": prompt(rng, 470, 470), "max_tokens": 32, "ignore_eos": True}
            r = await c.post("/v1/completions", json=body)
            assert r.status_code == 200, r.text
        await asyncio.gather(*(one() for _ in range(16)))


def test_a_load_run_leaks_nothing_and_fails_no_valid_request(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "2", "-c", "1024", "--max-num-seqs", "16",
                       "--kv-cache-tokens", "8192"])
    try:
        proc = psutil.Process(s.proc.pid)
        tally = {"ok": 0, "cancelled": 0, "malformed": 0}

        async def run(seconds):
            deadline = asyncio.get_running_loop().time() + seconds
            await asyncio.gather(*(client_loop(i, s.url, deadline, tally) for i in range(CLIENTS)))

        # every page of the KV pool touched first (16 x 512 tokens of unshared
        # prompts fill its 8192), so that how far the load gets in its first
        # half (a busy machine serves fewer requests) cannot count as growth
        asyncio.run(fill_kv_pool(s.url, rng=random.Random(7)))
        wait_idle(s, timeout=60)
        asyncio.run(run(SECONDS / 2))
        wait_idle(s, timeout=60)
        half = proc.memory_info()
        rss_half, anon_half = half.rss, half.rss - half.shared  # shared: the mapped model file's pages
        asyncio.run(run(SECONDS / 2))
        wait_idle(s, timeout=60)
        end = proc.memory_info()
        rss_end, anon_end = end.rss, end.rss - end.shared
        assert s.proc.poll() is None and http(s, "GET", "/health")[0] == 200
        assert metric(s, "kv_blocks_used") == 0
        assert tally["ok"] > 0 and tally["cancelled"] > 0 and tally["malformed"] > 0, tally
        # flat: what the second half added is noise next to the process (allocator slack)
        assert rss_end - rss_half < 0.05 * rss_half + 16 * 2 ** 20, (rss_half, rss_end)
        print(f"\nload run: {SECONDS:.0f} s, {tally}, RSS after the first half {rss_half / 2**20:.1f} MiB "
              f"(anonymous {anon_half / 2**20:.1f}) -> end {rss_end / 2**20:.1f} MiB (anonymous {anon_end / 2**20:.1f})")
    finally:
        assert s.stop() == 0
