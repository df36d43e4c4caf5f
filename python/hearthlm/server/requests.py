"""Running requests for an HTTP handler: several prompts' streams merged,
and a non-streaming wait that gives up (and aborts) when the client goes
away."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, List, Tuple

from starlette.requests import Request

from ..outputs import RequestOutput
from .async_engine import RequestStream

_DONE = object()


async def merged(streams: List[RequestStream]) -> AsyncIterator[Tuple[int, RequestOutput]]:
    """(stream number, output) as any stream produces them. Leaving early
    aborts every stream that has not finished."""
    if len(streams) == 1:  # the common case, without a task and a queue in between per token
        try:
            async for out in streams[0]:
                yield 0, out
        finally:
            streams[0].abort()
        return
    q: asyncio.Queue = asyncio.Queue()

    async def pump(i: int, s: RequestStream):
        try:
            async for out in s:
                await q.put((i, out))
            await q.put((i, _DONE))
        except BaseException as e:  # the engine's error, or cancelled
            await q.put((i, e))

    tasks = [asyncio.create_task(pump(i, s)) for i, s in enumerate(streams)]
    try:
        remaining = len(streams)
        while remaining:
            i, item = await q.get()
            if item is _DONE:
                remaining -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for t in tasks:
            t.cancel()
        for s in streams:
            s.abort()


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def until_done_or_gone(request: Request, work) -> Tuple[bool, object]:
    """Runs the coroutine work while watching the client: (True, result)
    when work finished, (False, None) when the client disconnected first
    (work is cancelled; the streams it reads are aborted by it)."""
    job = asyncio.create_task(work)
    watch = asyncio.create_task(_disconnected(request))
    done, _ = await asyncio.wait({job, watch}, return_when=asyncio.FIRST_COMPLETED)
    if job in done:
        watch.cancel()
        return True, job.result()
    job.cancel()
    try:
        await job
    except BaseException:
        pass
    return False, None
