"""pytest plugin of tests/sanitize/run.sh: a sanitizer report fails the test
during which it was written, whichever process wrote it.

ASan and UBSan write their reports to files ($HEARTH_SANITIZE_LOGS/asan.PID,
ubsan.PID: log_path in run.sh) rather than to stderr, so that a report of a
child process (the hearth executable, a converter, a server) is seen even
when the test captures that stderr or expects the child to fail anyway.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

LOGS = Path(os.environ["HEARTH_SANITIZE_LOGS"]) if os.environ.get("HEARTH_SANITIZE_LOGS") else None
_seen: set = set()


def _new_reports() -> list:
    if LOGS is None:
        return []
    new = sorted(p for p in LOGS.glob("*san.*") if p.name not in _seen)
    _seen.update(p.name for p in new)
    return new


def pytest_runtest_logstart(nodeid, location):
    # A report of this very process ends it: run.sh names the test it was in.
    if LOGS is not None:
        (LOGS / "current-test").write_text(nodeid + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    new = _new_reports()
    if new:
        rep = outcome.get_result()
        rep.outcome = "failed"
        text = "\n".join(f"--- {p} ---\n{p.read_text(errors='replace')}" for p in new)
        rep.longrepr = f"sanitizer report(s) during {call.when}:\n{text}"


def pytest_sessionfinish(session, exitstatus):
    # reports of children that session fixtures stop at the very end
    new = _new_reports()
    if new:
        print("\nsanitizer report(s) after the last test: " + ", ".join(map(str, new)))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
