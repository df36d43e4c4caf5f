"""POST /v1/chat/completions: the conversation rendered with the model's
own chat template, one engine request (n completions fork its prompt), the
answer as one JSON body or as Server-Sent Events."""

from __future__ import annotations

import time
from typing import AsyncIterator, Dict, List

from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.requests import Request

from ..outputs import Logprob
from .async_engine import RequestStream
from .protocol import ChatCompletionRequest
from .requests import merged, until_done_or_gone
from .shapes import Gathered, chunk_event, error_body, sse, top_entries, usage
from .state import ServerState
from .tool_parser import AutoToolDeltas
from .tools import ToolDeltas, ToolPlan


async def create_chat_completion(state: ServerState, req: ChatCompletionRequest, raw: Request) -> Response:
    plan = req.tool_plan(state.tool_call_parser)
    params = req.sampling_params(plan)
    text, ids = await state.chat_prompt(req.conversation(), req.add_generation_prompt, req.template_kwargs(plan),
                                        req.continue_final_message)
    request_id = state.new_request_id("chatcmpl")
    stream = await state.submit(request_id, {"prompt": text, "prompt_token_ids": ids}, params, "messages",
                                structured_param="tools" if plan.forced else "response_format")
    created = int(time.time())
    if req.stream:
        return StreamingResponse(_chunks(state, req, plan, request_id, created, stream),
                                 media_type="text/event-stream")

    async def gather():
        g = Gathered()
        async for _, out in merged([stream]):
            g.add(out)
        return g

    finished, g = await until_done_or_gone(raw, gather())
    if not finished:
        return Response(status_code=499)  # nobody is listening
    choices = []
    for i in sorted(g.choices):
        c = g.choices[i]
        message, finish_reason = {"role": "assistant", "content": c.text}, c.finish_reason
        if _tool_deltas(plan) is not None:
            message, finish_reason = _tool_message(plan, c.text, c.finish_reason)
        choices.append({"index": i, "message": message,
                        "logprobs": _logprobs(state, c.token_ids, c.logprobs, req.top_logprobs or 0) if req.logprobs else None,
                        "finish_reason": finish_reason, "stop_reason": c.stop_reason})
    return JSONResponse({"id": request_id, "object": "chat.completion", "created": created,
                         "model": state.served_model_name, "choices": choices,
                         "usage": usage(g.prompt_tokens, g.completion_tokens, g.cached_tokens)})


async def _chunks(state: ServerState, req: ChatCompletionRequest, plan: ToolPlan, request_id: str, created: int,
                  stream: RequestStream) -> AsyncIterator[str]:
    def chunk(choices: List[dict], with_usage=None) -> str:
        return chunk_event("chat.completion.chunk", request_id, created, state.served_model_name, choices,
                           req.include_usage, with_usage)

    g = Gathered()
    done = set()
    # a tool_choice turns each choice's text into its own deltas
    tools = {i: _tool_deltas(plan) for i in range(req.n)} if _tool_deltas(plan) is not None else None
    try:
        for i in range(req.n):
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None}])
        async for _, out in merged([stream]):
            g.add(out)
            for c in out.outputs:
                if c.index in done or (not c.text and not c.token_ids and c.finish_reason is None):
                    continue
                deltas, finish_reason = [{"content": c.text}] if c.text else [], c.finish_reason
                if tools is not None:
                    deltas = tools[c.index].feed(c.text)
                    if c.finish_reason is not None:
                        last, finish_reason = tools[c.index].finish(c.finish_reason)
                        deltas += last
                    elif not deltas and not (req.logprobs and c.token_ids):
                        continue  # nothing to say yet (a call comes whole when it is complete)
                deltas = deltas or [{}]
                for k, delta in enumerate(deltas):  # the logprobs with the first, the finish with the last
                    last = k == len(deltas) - 1
                    choice = {"index": c.index, "delta": delta, "logprobs": None,
                              "finish_reason": finish_reason if last else None}
                    if k == 0 and req.logprobs and c.token_ids:
                        choice["logprobs"] = _logprobs(state, c.token_ids, c.logprobs, req.top_logprobs or 0)
                    if last and c.finish_reason is not None:
                        choice["stop_reason"] = c.stop_reason
                        done.add(c.index)
                    yield chunk([choice])
        if req.include_usage:
            yield chunk([], usage(g.prompt_tokens, g.completion_tokens, g.cached_tokens))
    except Exception as e:  # the engine failed mid-stream: say so in the stream
        yield sse(error_body(str(e), "internal_server_error", None, 500))
    yield sse("[DONE]")


def _tool_deltas(plan: ToolPlan):
    """A choice's delta maker under a tool_choice (ToolDeltas' interface), or None."""
    if plan.forced:
        return ToolDeltas(plan)
    if plan.parser:
        return AutoToolDeltas()
    return None


def _tool_message(plan: ToolPlan, text: str, finish_reason: str) -> tuple:
    """A whole answer's message and finish_reason under a tool_choice: the
    deltas a stream of it gives, gathered, so that both always agree."""
    maker = _tool_deltas(plan)
    deltas = maker.feed(text)
    last, reported = maker.finish(finish_reason)
    deltas += last
    calls = [{k: v for k, v in call.items() if k != "index"} for d in deltas for call in d.get("tool_calls", [])]
    if not calls:
        return {"role": "assistant", "content": text}, finish_reason
    content = "".join(d.get("content", "") for d in deltas)
    # a forced call's content is "" (vLLM's); a chosen one's, the text around the calls or None
    return {"role": "assistant", "content": content if plan.forced else content or None, "tool_calls": calls}, reported


def _logprobs(state: ServerState, token_ids: List[int], logprobs: List[Dict[int, Logprob]], k: int) -> dict:
    """OpenAI's chat logprobs: {"content": [{token, logprob, bytes, top_logprobs}]}."""
    content = []
    for tid, alts in zip(token_ids, logprobs):
        content.append({"token": state.token_text(tid), "logprob": _finite(alts[tid].logprob),
                        "bytes": list(state.token_bytes(tid)),
                        "top_logprobs": [{"token": state.token_text(t), "logprob": _finite(lp.logprob),
                                          "bytes": list(state.token_bytes(t))} for t, lp in top_entries(alts, k)]})
    return {"content": content}


def _finite(x: float) -> float:
    return max(x, -9999.0)  # JSON has no -inf (vLLM clamps the same way)
