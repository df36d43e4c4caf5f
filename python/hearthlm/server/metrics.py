"""Prometheus metrics with vLLM's names under ``hearth:``.

The engine's counters (requests running and waiting, KV blocks, prefix-cache
queries and hits, prompt and generation tokens) are read from the engine's
last snapshot at scrape time; the latencies are histograms observed as
requests stream (time to first token, between tokens, end to end, in the
queue) and finished requests are counted by finish reason. Each server has
its own registry, so that several apps in one process (the tests) do not
collide."""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..outputs import RequestOutput

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                    20.0, 40.0, 80.0, 160.0, 640.0)


class _EngineCollector:
    def __init__(self, snapshot: Callable[[], dict], model_name: str):
        self._snapshot = snapshot
        self._model = model_name

    def collect(self):
        s = self._snapshot()
        labels = ["model_name"]

        def gauge(name, doc, value):
            g = GaugeMetricFamily(f"hearth:{name}", doc, labels=labels)
            g.add_metric([self._model], value)
            return g

        def counter(name, doc, value):
            c = CounterMetricFamily(f"hearth:{name}", doc, labels=labels)
            c.add_metric([self._model], value)
            return c

        yield gauge("num_requests_running", "Requests in the running batch.", s["num_requests_running"])
        yield gauge("num_requests_waiting", "Requests waiting to be scheduled.", s["num_requests_waiting"])
        yield gauge("kv_cache_usage_perc", "Fraction of KV-cache blocks in use (1 = full).",
                    s["kv_blocks_used"] / max(1, s["kv_blocks_total"]))
        yield gauge("kv_blocks_used", "KV-cache blocks held by requests.", s["kv_blocks_used"])
        yield gauge("kv_blocks_total", "KV-cache blocks in the pool.", s["kv_blocks_total"])
        yield counter("prefix_cache_queries", "Prompt tokens looked up in the prefix cache.", s["prefix_cache_queries"])
        yield counter("prefix_cache_hits", "Prompt tokens found in the prefix cache.", s["prefix_cache_hits"])
        yield counter("prompt_tokens", "Prompt tokens processed.", s["prompt_tokens"])
        yield counter("generation_tokens", "Tokens generated.", s["generation_tokens"])
        yield counter("num_preemptions", "Requests preempted when the KV pool ran dry.", s["num_preemptions"])


class ServerMetrics:
    """The registry behind GET /metrics. observe(output) is called for every
    engine output (from the engine thread)."""

    def __init__(self, snapshot: Callable[[], dict], model_name: str):
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(snapshot, model_name))
        labels = ["model_name"]
        self._model = model_name
        self.success = Counter("hearth:request_success", "Finished requests, by finish reason.",
                               ["model_name", "finished_reason"], registry=self.registry)
        self.ttft = Histogram("hearth:time_to_first_token_seconds", "Arrival to first token.", labels,
                              buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.itl = Histogram("hearth:inter_token_latency_seconds", "Time between tokens of a request.", labels,
                             buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.e2e = Histogram("hearth:e2e_request_latency_seconds", "Arrival to finish.", labels,
                             buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.queue = Histogram("hearth:request_queue_time_seconds", "Arrival to first scheduled.", labels,
                               buckets=_LATENCY_BUCKETS, registry=self.registry)
        self._last_token: Dict[str, float] = {}
        self._lock = threading.Lock()

    def observe(self, out: RequestOutput) -> None:
        now = time.monotonic()
        new_tokens = sum(len(c.token_ids) for c in out.outputs)
        with self._lock:
            last = self._last_token.get(out.request_id)
            if new_tokens:
                if last is None:
                    if "time_to_first_token" in out.metrics:
                        self.ttft.labels(self._model).observe(out.metrics["time_to_first_token"])
                    if "queued_seconds" in out.metrics:
                        self.queue.labels(self._model).observe(out.metrics["queued_seconds"])
                else:
                    for _ in range(new_tokens):
                        self.itl.labels(self._model).observe((now - last) / new_tokens)
                self._last_token[out.request_id] = now
            if out.finished:
                self._last_token.pop(out.request_id, None)
                if "total_seconds" in out.metrics:
                    self.e2e.labels(self._model).observe(out.metrics["total_seconds"])
                reason = out.outputs[0].finish_reason or "abort"
                self.success.labels(self._model, reason).inc()

    def aborted(self, request_id: str) -> None:
        """An aborted request: counted as finished for "abort" (vLLM's
        label), no more latencies from it."""
        with self._lock:
            self._last_token.pop(request_id, None)
            self.success.labels(self._model, "abort").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
