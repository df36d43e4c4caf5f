"""Small helpers shared by the engine tests."""

import os
import shutil
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def hearth_binary() -> str:
    """The `hearth` executable: $HEARTH_BIN, else the one on PATH (pip install
    puts it there), else a developer build in build/."""
    if os.environ.get("HEARTH_BIN"):
        return os.environ["HEARTH_BIN"]
    found = shutil.which("hearth")
    if found:
        return found
    dev = REPO / "build" / "hearth"
    if dev.exists():
        return str(dev)
    raise RuntimeError("the hearth executable is not installed (pip install .) nor built in build/")


def rel_max_err(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| relative to max |ref|: the parity measure of the tests."""
    return float(np.abs(a - ref).max() / np.abs(ref).max())
