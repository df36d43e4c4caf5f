"""One engine stepped for several readers: the generate() calls and the open
streams of one LLM. Whoever steps hands each output to the reader whose
request it is, kept until that reader asks, so that no reader loses another's
text or waits on an engine that has already finished its request.

Readers may be on different threads: the router's lock makes a step and the
hand-out of its outputs one indivisible act (a reader on another thread
waits for the step to end, then takes its share)."""

from __future__ import annotations

import threading
from typing import Dict, Iterable, List, Optional

from .engine import LLMEngine
from .outputs import RequestOutput


class StepRouter:
    def __init__(self, engine: LLMEngine):
        self.engine = engine
        self._unread: Dict[str, List[RequestOutput]] = {}  # request id -> its outputs not yet read
        self._failed: Dict[str, Exception] = {}  # request id -> the failed step its reader has not yet seen
        self._lock = threading.RLock()

    def watch(self, request_ids: Iterable[str]) -> None:
        with self._lock:
            for rid in request_ids:
                self._unread.setdefault(rid, [])

    def forget(self, request_ids: Iterable[str]) -> None:
        with self._lock:
            for rid in request_ids:
                self._unread.pop(rid, None)
                self._failed.pop(rid, None)

    def take(self, request_id: str) -> List[RequestOutput]:
        """The outputs of a watched request that arrived since the last take;
        raises the error of a step that failed while another reader stepped."""
        with self._lock:
            failed: Optional[Exception] = self._failed.pop(request_id, None)
            if failed is not None:
                raise failed
            unread = self._unread.get(request_id)
            if not unread:
                return []
            self._unread[request_id] = []
            return unread

    def step(self) -> None:
        """One engine step, its outputs kept for their readers (those of
        requests nobody watches are dropped). A step that fails raises here
        and at every other reader's next take: the failing request may be
        any reader's, and each one aborts its own."""
        with self._lock:
            if not self.engine.has_unfinished_requests():
                # a watched request that never finishes would make a reader step forever
                raise RuntimeError("the engine has no request left to step: a request was aborted from outside")
            try:
                outputs = self.engine.step()
            except Exception as e:
                for rid in self._unread:
                    self._failed[rid] = e
                raise
            for out in outputs:
                unread = self._unread.get(out.request_id)
                if unread is not None:
                    unread.append(out)

    def take_or_step(self, request_ids: Iterable[str]) -> List[RequestOutput]:
        """The news of these requests since their last take, in request
        order; when there is none, one step first. Looking and stepping are
        one act under the lock: another thread's step cannot finish these
        requests in between and leave this reader stepping an idle engine."""
        request_ids = list(request_ids)
        with self._lock:
            news = [out for rid in request_ids for out in self.take(rid)]
            if news:
                return news
            self.step()
            return [out for rid in request_ids for out in self.take(rid)]
