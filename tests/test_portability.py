"""The installed extension runs on CPUs without AVX-512 (and without AVX):
under qemu-user emulating a Haswell (AVX2, no AVX-512) and a Nehalem (SSE4
only), any AVX-512 (or AVX) instruction outside the kernels chosen for that
CPU would kill the process with SIGILL. The logits must also equal the native
run of the same kernel set."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.gguf_files import write_tiny_model

from hearthlm import LLM, _core

QEMU = shutil.which("qemu-x86_64")
pytestmark = pytest.mark.skipif(QEMU is None or not sys.platform.startswith("linux"),
                                reason="qemu-user (Debian package qemu-user) is not installed")

SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import hearthlm._core as core
from hearthlm import LLM
out = {"chosen": core.kernel_name(), "supported": core.supported_kernels(), "logits": {}}
for name in core.supported_kernels():
    core.use_kernels(name)
    for path in sys.argv[2:]:
        out["logits"][name + ":" + path] = LLM(path, n_threads=2, kv_type="f32").eval([1, 2, 3, 4, 5]).tolist()
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("portable")
    return [str(write_tiny_model(d / f"{wt}.gguf", weight_type=wt, arch=arch))
            for wt, arch in (("q4_0", "llama"), ("q8_0", "qwen2"), ("q4_1", "llama"), ("f16", "qwen2"))]


@pytest.mark.parametrize("cpu, expect_chosen, expect_supported", [
    ("Haswell", "avx2", ["scalar", "avx2"]),
    ("Nehalem", "scalar", ["scalar"]),
])
def test_runs_under_emulated_cpu_without_avx512(files, cpu, expect_chosen, expect_supported):
    tests_dir = str(Path(__file__).parent)
    r = subprocess.run([QEMU, "-cpu", cpu, sys.executable, "-c", SCRIPT, tests_dir, *files],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"died under {cpu} (code {r.returncode}): {r.stderr[-2000:]}"
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["chosen"] == expect_chosen and out["supported"] == expect_supported
    before = _core.kernel_name()
    try:
        for key, logits in out["logits"].items():
            name, path = key.split(":", 1)
            _core.use_kernels(name)
            native = LLM(path, n_threads=2, kv_type="f32").eval([1, 2, 3, 4, 5])
            # same kernels, same thread split: the emulated run gives the same bits
            # (up to libm's exp/cos, which the emulator runs through the same code)
            np.testing.assert_allclose(np.array(logits, dtype=np.float32), native, rtol=0, atol=1e-5)
    finally:
        _core.use_kernels(before)
