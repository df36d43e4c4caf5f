"""Small helpers shared by the engine tests."""

import os
import shutil
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def hearth_binary() -> str:
    """The C++ `hearth` executable: $HEARTH_BIN, else the one the imported
    hearthlm's launcher runs (hearthlm/bin/hearth when installed, build/hearth
    with PYTHONPATH=python), so the tests run the tree or install under test and
    not whatever `hearth` comes first on PATH; else the one on PATH, else build/."""
    if os.environ.get("HEARTH_BIN"):
        return os.environ["HEARTH_BIN"]
    try:
        from hearthlm.cli import LauncherError, cpp_binary
    except ImportError:  # an older hearthlm without the launcher
        pass
    else:
        try:
            return cpp_binary()
        except LauncherError:
            pass
    found = shutil.which("hearth")
    if found:
        return found
    dev = REPO / "build" / "hearth"
    if dev.exists():
        return str(dev)
    raise RuntimeError("the hearth executable is not installed (pip install .) nor built in build/")


def hearth_launcher() -> list:
    """The `hearth` launcher (hearthlm.cli) of the imported hearthlm, as a
    command; run it with launcher_env() so the child imports the same package."""
    return [sys.executable, "-m", "hearthlm.cli"]


def launcher_env(**overrides) -> dict:
    """os.environ with this process's sys.path as PYTHONPATH, plus overrides
    (a value of None removes the variable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def rel_max_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| relative to max |ref|: the parity measure of the tests."""
    return float(np.abs(a - ref).max() / np.abs(ref).max())


def counts_during(call) -> int:
    """How far another thread counts while call() runs. With the GIL held
    throughout the call, the count read just before and just after it could
    not move (a long switch interval keeps the GIL from changing hands
    anywhere but inside a release): a large count means call() released it."""
    import threading

    count = [0]
    stop = threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    t = threading.Thread(target=counter)
    try:
        t.start()
        while count[0] == 0:
            pass
        before = count[0]
        call()
        return count[0] - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
