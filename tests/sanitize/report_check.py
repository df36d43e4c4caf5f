"""pytest plugin of tests/sanitize/run.sh: a sanitizer report fails the test
during which it was written, whichever process wrote it.

ASan and UBSan write their reports to files ($HEARTH_SANITIZE_LOGS/asan.PID,
ubsan.PID: log_path in run.sh) rather than to stderr, so that a report of a
child process (the hearth executable, a converter, a server) is seen even
when the test captures that stderr or expects the child to fail anyway.

Under pytest-xdist (run.sh's two workers) each worker gives its children a
folder of its own (SHARED/gw0, ...), so that a child's report fails the test
of the worker that started it. A worker's own reports still go to the shared
folder (their path was fixed when the worker started), but halt_on_error
ends the worker at once and xdist names the test it was running. At the end
the controller fails the session on any report no test was failed for.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

SHARED = Path(os.environ["HEARTH_SANITIZE_LOGS"]) if os.environ.get("HEARTH_SANITIZE_LOGS") else None
WORKER = os.environ.get("PYTEST_XDIST_WORKER")


def _logs_of_this_process():
    """The folder whose new reports fail the running test."""
    if SHARED is None or not WORKER:
        return SHARED
    logs = SHARED / WORKER
    logs.mkdir(exist_ok=True)
    os.environ["HEARTH_SANITIZE_LOGS"] = str(logs)  # run.sh's hearth wrapper reads it
    options, found = re.subn(r"log_path=[^:]*", f"log_path={logs}/asan", os.environ.get("ASAN_OPTIONS", ""))
    if found != 1:
        raise RuntimeError("report_check: ASAN_OPTIONS needs one log_path= to give this worker's children their folder")
    os.environ["ASAN_OPTIONS"] = options
    os.environ["HEARTH_UBSAN_LOG_PATH"] = str(logs / "ubsan")
    return logs


LOGS = _logs_of_this_process()
_seen: set = set()  # the reports a test was failed for (paths as strings)


def _new_reports(folders) -> list:
    new = sorted(p for folder in folders for p in folder.glob("*san.*") if str(p) not in _seen)
    _seen.update(map(str, new))
    return new


def pytest_runtest_logstart(nodeid, location):
    # A report of this very process ends it: run.sh names the test it was in.
    if LOGS is not None:
        (LOGS / "current-test").write_text(nodeid + "\n")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    new = _new_reports([LOGS]) if LOGS is not None else []
    if new:
        rep = outcome.get_result()
        rep.outcome = "failed"
        text = "\n".join(f"--- {p} ---\n{p.read_text(errors='replace')}" for p in new)
        rep.longrepr = f"sanitizer report(s) during {call.when}:\n{text}"


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    # the controller: what a worker has already failed a test for
    _seen.update(getattr(node, "workeroutput", {}).get("sanitizer_reports_failed", []))


def pytest_sessionfinish(session, exitstatus):
    if SHARED is None:
        return
    if WORKER:
        # the controller decides about the rest (a worker's exit status is not passed on)
        session.config.workeroutput["sanitizer_reports_failed"] = sorted(_seen)
        return
    # a worker's own reports, and children's written after their worker's
    # last test (session fixtures stopping servers at the very end)
    new = _new_reports([SHARED, *sorted(p for p in SHARED.iterdir() if p.is_dir())])
    if new:
        print("\nsanitizer report(s) no test was failed for (a worker's own, which ended it, or written after "
              "the last test): " + ", ".join(map(str, new)))
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
