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



def _logs_of_this_process():
    """The folder whose new reports fail the running test. Under pytest-xdist
    (run.sh runs two workers) each worker gives its children a folder of its
    own, so that a child's report fails the test of the worker that started
    it. A worker's own reports still go to the shared folder (their path was
    fixed when the worker started), but halt_on_error ends the worker at
    once and xdist names the test it was running."""
    if not os.environ.get("HEARTH_SANITIZE_LOGS"):
        return None
    logs = Path(os.environ["HEARTH_SANITIZE_LOGS"])
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        shared, logs = logs, logs / worker
        logs.mkdir(exist_ok=True)
        os.environ["HEARTH_SANITIZE_LOGS"] = str(logs)  # run.sh's hearth wrapper reads it
        os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "").replace(
            f"log_path={shared}/asan", f"log_path={logs}/asan")
        os.environ["HEARTH_UBSAN_LOG_PATH"] = str(logs / "ubsan")
    return logs


LOGS = _logs_of_this_process()
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
