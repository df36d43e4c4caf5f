"""POST /v1/completions: one engine request per prompt (n completions fork
each), choices numbered prompt by prompt, as one JSON body or as
Server-Sent Events."""

from __future__ import annotations

import time
from typing import AsyncIterator, Dict, List

from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import Request

from ..outputs import Logprob
from .async_engine import RequestStream
from .protocol import CompletionRequest
from .requests import merged, until_done_or_gone
from .shapes import Gathered, chunk_event, error_body, sse, top_entries, usage
from .state import ServerState


async def create_completion(state: ServerState, req: CompletionRequest, raw: Request) -> Response:
    params = req.sampling_params()
    if req.echo and req.logprobs is not None:
        params.prompt_logprobs = req.logprobs  # the echoed prompt's tokens get theirs too
    request_id = state.new_request_id("cmpl")
    prompts = req.prompts()
    streams: List[RequestStream] = []
    echoes: List[str] = []
    try:
        for i, p in enumerate(prompts):
            streams.append(await state.submit(f"{request_id}-{i}", p, params, first_of_request=i == 0))
            echoes.append((p if isinstance(p, str) else state.detokenize(p)) if req.echo else "")
    except BaseException:
        for s in streams:
            s.abort()
        raise
    created = int(time.time())
    if req.stream:
        return StreamingResponse(_chunks(state, req, request_id, created, streams, echoes),
                                 media_type="text/event-stream")

    async def gather():
        gs = [Gathered(first_index=i * req.n) for i in range(len(streams))]
        async for i, out in merged(streams):
            gs[i].add(out)
        return gs

    finished, gs = await until_done_or_gone(raw, gather())
    if not finished:
        return Response(status_code=499)
    choices = []
    for p, g in enumerate(gs):
        for i in sorted(g.choices):
            c = g.choices[i]
            lp = None
            if req.logprobs is not None:
                echoed = _prompt_logprobs(state, g, req.logprobs) if req.echo else None
                start = sum(len(t) for t in echoed["tokens"]) if echoed else 0
                lp = _logprobs(state, c.token_ids, c.logprobs, req.logprobs, start)
                if echoed:
                    lp = _join(echoed, lp)
            choices.append({"index": i, "text": echoes[p] + c.text, "logprobs": lp,
                            "finish_reason": c.finish_reason, "stop_reason": c.stop_reason})
    return JSONResponse({"id": request_id, "object": "text_completion", "created": created,
                         "model": state.served_model_name, "choices": choices,
                         "usage": usage(sum(g.prompt_tokens for g in gs), sum(g.completion_tokens for g in gs),
                                        sum(g.cached_tokens for g in gs))})


async def _chunks(state: ServerState, req: CompletionRequest, request_id: str, created: int,
                  streams: List[RequestStream], echoes: List[str]) -> AsyncIterator[str]:
    def chunk(choices: List[dict], with_usage=None) -> str:
        return chunk_event("text_completion", request_id, created, state.served_model_name, choices,
                           req.include_usage, with_usage)

    gs = [Gathered(first_index=i * req.n) for i in range(len(streams))]
    done = set()
    offsets: Dict[int, int] = {}  # text so far per choice, for text_offset
    try:
        async for p, out in merged(streams):
            gs[p].add(out)
            for c in out.outputs:
                index = p * req.n + c.index
                if index in done or (not c.text and not c.token_ids and c.finish_reason is None):
                    continue
                text = c.text
                first = index not in offsets
                if first:
                    text = echoes[p] + text
                    offsets[index] = 0
                choice = {"index": index, "text": text, "logprobs": None, "finish_reason": c.finish_reason}
                if req.logprobs is not None and (c.token_ids or first):
                    # text_offset: where each token's text starts in the choice's text so far
                    echoed = _prompt_logprobs(state, gs[p], req.logprobs) if first and req.echo else None
                    if echoed:
                        offsets[index] = sum(len(t) for t in echoed["tokens"])
                    lp = _logprobs(state, c.token_ids, c.logprobs, req.logprobs, offsets[index])
                    offsets[index] += sum(len(t) for t in lp["tokens"])
                    choice["logprobs"] = _join(echoed, lp) if echoed else lp
                if c.finish_reason is not None:
                    choice["stop_reason"] = c.stop_reason
                    done.add(index)
                yield chunk([choice])
        if req.include_usage:
            yield chunk([], usage(sum(g.prompt_tokens for g in gs), sum(g.completion_tokens for g in gs),
                                  sum(g.cached_tokens for g in gs)))
    except Exception as e:
        yield sse(error_body(str(e), "internal_server_error", None, 500))
    yield sse("[DONE]")


def _prompt_logprobs(state: ServerState, g: Gathered, k: int) -> dict:
    """The echoed prompt's part of the logprobs: its first token has none."""
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    offset = 0
    for tid, alts in zip(g.prompt_token_ids, g.prompt_logprobs or []):
        tok = state.token_text(tid)
        out["tokens"].append(tok)
        out["token_logprobs"].append(None if alts is None else max(alts[tid].logprob, -9999.0))
        out["top_logprobs"].append(None if alts is None else _top(state, tid, alts, k))
        out["text_offset"].append(offset)
        offset += len(tok)
    return out


def _join(a: dict, b: dict) -> dict:
    return {key: a[key] + b[key] for key in a}


def _logprobs(state: ServerState, token_ids: List[int], logprobs: List[Dict[int, Logprob]], k: int,
              offset: int) -> dict:
    """OpenAI's completion logprobs: tokens, token_logprobs, top_logprobs, text_offset."""
    out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
    for tid, alts in zip(token_ids, logprobs):
        tok = state.token_text(tid)
        out["tokens"].append(tok)
        out["token_logprobs"].append(max(alts[tid].logprob, -9999.0))
        out["top_logprobs"].append(_top(state, tid, alts, k))
        out["text_offset"].append(offset)
        offset += len(tok)
    return out


def _top(state: ServerState, tid: int, alts: Dict[int, Logprob], k: int) -> Dict[str, float]:
    """One position's top_logprobs: the chosen token first, then the k most
    likely (k + 1 entries at most, as OpenAI's and vLLM's completions)."""
    top = {state.token_text(tid): max(alts[tid].logprob, -9999.0)}
    for t, lp in top_entries(alts, k):
        top.setdefault(state.token_text(t), max(lp.logprob, -9999.0))
    return top
