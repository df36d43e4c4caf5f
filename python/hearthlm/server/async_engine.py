"""The engine behind the server: an LLMEngine stepping in its own thread.

The thread owns the LLMEngine (it is not thread-safe): coroutines hand it
commands through a queue (add a request, abort one) and read each request's
outputs from an asyncio queue that the thread fills after every step. While
a step runs the C++ core holds no GIL, so the event loop keeps serving HTTP.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Optional

from ..engine import LLMEngine
from ..outputs import RequestOutput
from ..sampling_params import SamplingParams


class EngineDeadError(RuntimeError):
    """The engine thread stopped; no request can be served."""


class EngineStepError(RuntimeError):
    """A step of the engine raised: the requests it ran fail (HTTP 500),
    the engine goes on."""


@dataclass
class _Stream:
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue


class AsyncEngine:
    """Serves requests from coroutines on one LLMEngine.

    on_output(request_output) is called in the engine thread for every
    output and on_abort(request_id) for every abort (the metrics use them);
    snapshot() gives the engine's counters as of the last step, readable
    from any thread.
    """

    def __init__(self, engine: LLMEngine, on_output: Optional[Callable[[RequestOutput], None]] = None,
                 on_abort: Optional[Callable[[str], None]] = None):
        self.engine = engine
        self._on_output = on_output
        self._on_abort = on_abort
        self._commands: "queue.SimpleQueue[tuple]" = queue.SimpleQueue()
        self._streams: Dict[str, _Stream] = {}
        self._pending_adds = 0  # submitted, not yet taken by the engine thread
        self._lock = threading.Lock()
        self._snapshot = engine.stats()
        self._stopping = threading.Event()
        self._error: Optional[BaseException] = None
        self.step_failures = 0  # steps that raised (each failed the requests it ran)
        self._thread = threading.Thread(target=self._run, name="hearth-engine", daemon=True)
        self._thread.start()

    # --- from coroutines ---------------------------------------------------------
    async def add(self, request_id: str, prompt: dict, params: SamplingParams) -> "RequestStream":
        """Hands a request to the engine; returns its stream of outputs once
        the engine took it. Raises what LLMEngine.add_request raises
        (HearthError: a prompt too long for the context, a max_tokens that
        cannot fit beside it, ...), so a bad request fails before any output
        is sent."""
        if self._error is not None or self._stopping.is_set():
            raise EngineDeadError(f"the engine has stopped: {self._error or 'shutting down'}")
        # a grammar compiles here, in a worker thread: on the engine's thread
        # a big tool list would stall every stream (200 tools: 0.4 s)
        matchers = None
        if params.structured_outputs is not None:
            matchers = await asyncio.to_thread(self.engine.structured_matchers, params)
        stream = _Stream(asyncio.get_running_loop(), asyncio.Queue())
        accepted: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            self._pending_adds += 1
        self._commands.put(("add", request_id, prompt, params, matchers, stream, accepted))
        try:
            await asyncio.wrap_future(accepted)
        except asyncio.CancelledError:
            self.abort(request_id)  # queued after the add: it drops the request if it was taken
            raise
        return RequestStream(self, request_id, stream.queue)

    def abort(self, request_id: str) -> None:
        """Drops a request (from any thread); its KV blocks go back at once."""
        self._commands.put(("abort", request_id))

    def snapshot(self) -> dict:
        """The engine's counters after its last step (LLMEngine.stats), plus
        num_requests_waiting counting requests not yet handed to it."""
        with self._lock:
            s = dict(self._snapshot)
            s["num_requests_waiting"] += self._pending_adds
        return s

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._error is None

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stops the thread after its current step; running requests end with an error."""
        self._stopping.set()
        self._commands.put(("wake",))
        self._thread.join(timeout)

    # --- the engine thread -------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                busy = self.engine.has_unfinished_requests()
                self._take_commands(block=not busy)
                if self._stopping.is_set():
                    break
                if self.engine.has_unfinished_requests():
                    self._step()
        except BaseException as e:  # the loop itself broke: every stream learns of it
            self._error = e
        finally:
            self._fail_all(self._error or EngineDeadError("the server is shutting down"))

    def _step(self) -> None:
        """One engine step. A step that raises (a bug, not a bad request:
        those are refused in add) fails the requests it was running, which
        frees their KV blocks, and the loop goes on serving new requests."""
        try:
            outputs = self.engine.step()
        except Exception as e:
            self.step_failures += 1
            self._fail_running(EngineStepError(f"the engine failed while running this request: {e!r}"))
            return
        self._publish(outputs)

    def _take_commands(self, block: bool) -> None:
        try:
            cmd = self._commands.get(timeout=0.5) if block else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            self._do(cmd)
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                return

    def _do(self, cmd: tuple) -> None:
        if cmd[0] == "add":
            _, request_id, prompt, params, matchers, stream, accepted = cmd
            with self._lock:
                self._pending_adds -= 1
            if stream.loop.is_closed():
                return
            try:
                if request_id in self._streams:
                    raise ValueError(f"request id {request_id!r} is already running")
                self.engine.add_request(request_id, prompt, params, max_tokens_must_fit=True, matchers=matchers)
            except BaseException as e:
                accepted.set_exception(e)
                return
            self._streams[request_id] = stream
            accepted.set_result(None)
            self._refresh_snapshot()
        elif cmd[0] == "abort":
            if self._streams.pop(cmd[1], None) is not None:
                self.engine.abort_request(cmd[1])
                if self._on_abort is not None:
                    self._on_abort(cmd[1])
                self._refresh_snapshot()

    def _publish(self, outputs) -> None:
        # one wake-up per event loop per step (each call_soon_threadsafe
        # writes to the loop's self-pipe), not one per request
        by_loop: Dict[asyncio.AbstractEventLoop, list] = {}
        for out in outputs:
            stream = self._streams.get(out.request_id)
            if self._on_output is not None:
                self._on_output(out)
            if out.finished:
                self._streams.pop(out.request_id, None)
            if stream is not None:
                by_loop.setdefault(stream.loop, []).append((stream.queue, out))
        for loop, items in by_loop.items():
            _put_all(loop, items)
        self._refresh_snapshot()

    def _refresh_snapshot(self) -> None:
        s = self.engine.stats()
        with self._lock:
            self._snapshot = s

    def _fail_running(self, error: BaseException) -> None:
        for request_id, stream in list(self._streams.items()):
            try:
                self.engine.abort_request(request_id)
            except Exception:
                pass
            if self._on_abort is not None:
                self._on_abort(request_id)
            _put_all(stream.loop, [(stream.queue, error)])
        self._streams.clear()
        self._refresh_snapshot()

    def _fail_all(self, error: BaseException) -> None:
        self._fail_running(error)
        while True:  # requests handed in but never added
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                break
            if cmd[0] == "add" and not cmd[6].done():
                cmd[6].set_exception(EngineDeadError(f"the engine has stopped: {error}"))


def _put_all(loop: asyncio.AbstractEventLoop, items: list) -> None:
    """(queue, item) pairs of one event loop's streams, handed over at once."""
    def put():
        for q, item in items:
            q.put_nowait(item)
    try:
        loop.call_soon_threadsafe(put)
    except RuntimeError:  # the clients' event loop is gone
        pass


class RequestStream:
    """One request's outputs as the engine steps: ``async for out in stream``
    ends after the output with finished=True. abort() (or leaving early and
    calling it, as the server does when a client goes away) drops the request."""

    def __init__(self, engine: AsyncEngine, request_id: str, q: asyncio.Queue):
        self.engine = engine
        self.request_id = request_id
        self._queue = q
        self.finished = False

    def __aiter__(self):
        return self._outputs()

    async def _outputs(self):
        while not self.finished:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                self.finished = True
                raise item
            self.finished = item.finished
            yield item

    def abort(self) -> None:
        if not self.finished:
            self.finished = True
            self.engine.abort(self.request_id)
