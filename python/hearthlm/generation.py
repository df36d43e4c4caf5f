"""LLM.generate's work: prompts to completions. The token loop runs in C++
(hearthlm._core.Generation: sampling, stop rules, streaming text); this module
turns prompts and SamplingParams into those calls and their results into
RequestOutputs."""

from __future__ import annotations

import itertools
import secrets
import time
from typing import Iterator, List, Optional, Sequence

from . import _core
from .outputs import CompletionOutput, RequestOutput
from .sampling_params import SamplingParams

_request_ids = itertools.count()


def normalize_prompts(prompts) -> List[dict]:
    """str | list[str] | list[int] (one prompt of ids) | list[list[int]] |
    {"prompt": ...} / {"prompt_token_ids": [...]} dicts -> [{"prompt"|"prompt_token_ids": ...}]."""
    def one(p):
        if isinstance(p, str):
            return {"prompt": p}
        if isinstance(p, dict) and ("prompt" in p or "prompt_token_ids" in p):
            return dict(p)
        if isinstance(p, (list, tuple)) and all(isinstance(t, int) and not isinstance(t, bool) for t in p):
            return {"prompt_token_ids": list(p)}
        raise ValueError(f"a prompt must be a str, a list of token ids or a dict, got {type(p).__name__}")

    if isinstance(prompts, (str, dict)):
        return [one(prompts)]
    prompts = list(prompts)
    if prompts and all(isinstance(t, int) and not isinstance(t, bool) for t in prompts):
        return [one(prompts)]  # a single prompt given as token ids
    if not prompts:
        raise ValueError("prompts is empty")
    return [one(p) for p in prompts]


class Generator:
    """Runs requests on one LLM's model, on its default sequence (so that a
    request that starts as the previous one did reuses that part of the
    KV cache: multi-turn chat)."""

    def __init__(self, llm, seed: Optional[int]):
        self.llm = llm
        self._seeds = None if seed is None else _SeedSequence(seed)

    def _seed(self, params: SamplingParams) -> int:
        if params.seed is not None:
            return params.seed
        return self._seeds.next() if self._seeds is not None else secrets.randbits(64)

    def prompt_ids(self, prompt: dict) -> List[int]:
        if "prompt_token_ids" in prompt:
            ids = list(prompt["prompt_token_ids"])
        else:
            ids = self.llm.tokenize(prompt["prompt"], add_special=True, parse_special=True)
        if not ids:
            raise ValueError("the prompt is empty: give some text or token ids")
        n_ctx = self.llm.n_ctx
        if len(ids) >= n_ctx:
            raise ValueError(f"the prompt is {len(ids)} tokens, which does not fit in the context of {n_ctx} "
                             "(raise n_ctx or shorten the prompt)")
        return ids

    def run(self, prompts, params: SamplingParams) -> List[RequestOutput]:
        requests = [(p, self.prompt_ids(p)) for p in normalize_prompts(prompts)]  # all checked before any work
        return [self._request(p, ids, params) for p, ids in requests]

    def _request(self, prompt: dict, ids: List[int], params: SamplingParams) -> RequestOutput:
        t0 = time.perf_counter()
        if params.num_beams > 1:
            completions, metrics = self._beams(ids, params)
        else:
            sampler = _core.Sampler(params.core_sampling(self._seed(params)))
            completions, metrics = [], {"prefill_seconds": 0.0, "decode_seconds": 0.0, "reused_tokens": 0}
            for i in range(params.n):
                gen = self._start(ids, params, sampler)
                pieces, token_ids, logprobs, cum = [], [], [], 0.0
                while (step := gen.step()) is not None:
                    tid, text, lp, top = step
                    pieces.append(text)
                    token_ids.append(tid)
                    cum += lp
                    if params.logprobs is not None:
                        logprobs.append({tid: lp, **{a: b for a, b in top}})
                completions.append(_completion(i, "".join(pieces), token_ids, gen, params, logprobs, cum))
                metrics["prefill_seconds"] += gen.prefill_seconds
                metrics["decode_seconds"] += gen.decode_seconds
                if i == 0:
                    metrics["reused_tokens"] = gen.reused_tokens
        generated = sum(len(c.token_ids) for c in completions)
        metrics.update(prompt_tokens=len(ids), generated_tokens=generated, total_seconds=time.perf_counter() - t0)
        if metrics.get("decode_seconds"):
            metrics["decode_tokens_per_s"] = max(generated - len(completions), 0) / metrics["decode_seconds"]
        if metrics.get("prefill_seconds"):
            metrics["prefill_tokens_per_s"] = (len(ids) - metrics.get("reused_tokens", 0)) / metrics["prefill_seconds"]
        return RequestOutput(request_id=str(next(_request_ids)), prompt=prompt.get("prompt"), prompt_token_ids=ids,
                             outputs=completions, metrics=metrics)

    def _start(self, ids, params: SamplingParams, sampler):
        model = self.llm._weights()
        max_tokens = -1 if params.max_tokens is None else int(params.max_tokens)
        return _core.Generation(model, model.default_sequence, ids, sampler, max_tokens, params.stop,
                                params.stop_token_ids, params.ignore_eos,
                                -1 if params.logprobs is None else int(params.logprobs),
                                not params.skip_special_tokens)

    def stream(self, prompt, params: SamplingParams) -> Iterator[str]:
        """Text deltas of one completion as they are generated."""
        if params.n != 1 or params.num_beams != 1:
            raise ValueError("stream=True generates one completion: n and num_beams must be 1")
        reqs = normalize_prompts(prompt)
        if len(reqs) != 1:
            raise ValueError("stream=True takes one prompt")
        ids = self.prompt_ids(reqs[0])
        gen = self._start(ids, params, _core.Sampler(params.core_sampling(self._seed(params))))

        def deltas():
            while (step := gen.step()) is not None:
                if step[1]:
                    yield step[1]
        return deltas()

    def _beams(self, ids, params: SamplingParams):
        model = self.llm._weights()
        # the tokens that end a beam; -1 (no token) when there are none at all
        ends = ([] if params.ignore_eos else self.llm._tok().end_of_generation) + list(params.stop_token_ids)
        t0 = time.perf_counter()
        hyps, steps, peak_blocks = _core.beam_search(
            model, model.default_sequence, ids, int(params.num_beams), int(params.max_tokens),
            float(params.length_penalty), str(params.early_stopping).lower(), float(params.repetition_penalty),
            ends or [-1])
        completions = []
        for i, (tokens, score) in enumerate(hyps[: params.n]):
            text = self.llm.detokenize(tokens, special=not params.skip_special_tokens)
            reason, stop_reason = ("stop", tokens[-1]) if tokens and tokens[-1] in ends else ("length", None)
            for s in params.stop:  # stop strings cut the text, as in sampling
                at = text.find(s)
                if at >= 0:
                    text, reason, stop_reason = text[:at], "stop", s
                    break
            completions.append(CompletionOutput(index=i, text=text, token_ids=list(tokens), cumulative_logprob=score,
                                                finish_reason=reason, stop_reason=stop_reason))
        metrics = {"beam_steps": steps, "kv_peak_bytes": peak_blocks * model.kv_block_bytes,
                   "decode_seconds": time.perf_counter() - t0}
        return completions, metrics


def _completion(index, text, token_ids, gen, params: SamplingParams, logprobs, cum) -> CompletionOutput:
    stop_reason = gen.stop_string or (gen.stop_token if gen.stop_token >= 0 else None)
    return CompletionOutput(index=index, text=text, token_ids=token_ids,
                            cumulative_logprob=cum if params.logprobs is not None else None,
                            logprobs=logprobs if params.logprobs is not None else None,
                            finish_reason=gen.finish_reason or None, stop_reason=stop_reason)


class _SeedSequence:
    """Per-request seeds from LLM(seed=...): the same LLM seed gives the same
    sequence of requests the same texts."""

    def __init__(self, seed: int):
        self._n = itertools.count()
        self._seed = int(seed)

    def next(self) -> int:
        # splitmix64 of (seed, request number): well spread, reproducible
        z = (self._seed + 0x9E3779B97F4A7C15 * (next(self._n) + 1)) & (2 ** 64 - 1)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2 ** 64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2 ** 64 - 1)
        return z ^ (z >> 31)
