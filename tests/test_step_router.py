"""StepRouter (hearthlm/step_router.py) on a stand-in engine: each reader gets
its own requests' outputs, whoever steps, and a failed step reaches every
reader."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from hearthlm.step_router import StepRouter


class FakeEngine:
    def __init__(self, steps):
        self.steps = list(steps)  # each: a list of request ids with news, or an exception

    def has_unfinished_requests(self):
        return bool(self.steps)

    def step(self):
        s = self.steps.pop(0)
        if isinstance(s, Exception):
            raise s
        return [SimpleNamespace(request_id=rid) for rid in s]


def test_outputs_wait_for_their_reader_and_unwatched_ones_are_dropped():
    router = StepRouter(FakeEngine([["a", "b", "x"], ["b"]]))
    router.watch(["a", "b"])
    router.step()
    router.step()
    assert [o.request_id for o in router.take("b")] == ["b", "b"] and router.take("b") == []
    assert [o.request_id for o in router.take("a")] == ["a"]
    assert router.take("x") == []  # nobody watches it
    with pytest.raises(RuntimeError, match="no request left"):
        router.step()  # an idle engine: a reader would otherwise step for ever


def test_a_failed_step_reaches_every_reader_once():
    boom = RuntimeError("the step failed")
    router = StepRouter(FakeEngine([boom, ["a"]]))
    router.watch(["a", "b"])
    with pytest.raises(RuntimeError, match="the step failed"):
        router.step()  # the reader that stepped
    router.forget(["a"])  # it aborted its own request
    with pytest.raises(RuntimeError, match="the step failed"):
        router.take("b")  # the other reader, at its next read
    assert router.take("b") == []
