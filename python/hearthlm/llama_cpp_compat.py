"""llama.cpp (through llama-cpp-python) opened the way hearth's comparisons
need it, for `hearth-perplexity --llama-cpp`. (bench/ and the tests open it
through tests/helpers/llama_cpp_ref.py, which does the same and imports no
hearthlm code.)

llama.cpp's "extra buffer types" (its AMX kernels and the repacked CPU_REPACK
weight layouts) stay OFF unless HEARTH_LLAMA_CPP_EXTRA_BUFTS=1: in the VMs
these figures come from they crashed llama.cpp (SIGILL on a Xeon that
advertises AMX without enabling it; SIGSEGV on 2026-12-06's Xeon with AMX,
on SmolLM2's Q4_1 file). Off, llama.cpp runs its plain CPU kernels (AVX-512
/ AVX2, as it was built)."""
import os
from typing import Optional


def extra_bufts_enabled() -> bool:
    return os.environ.get("HEARTH_LLAMA_CPP_EXTRA_BUFTS", "0") == "1"


def open_llama(path, *, extra_bufts: Optional[bool] = None, **kw):
    """`llama_cpp.Llama(model_path=path, **kw)` with the extra buffer types
    as asked (default: extra_bufts_enabled()). Imports llama_cpp."""
    import llama_cpp.llama_cpp as lc
    from llama_cpp import Llama

    if extra_bufts is None:
        extra_bufts = extra_bufts_enabled()
    orig = lc.llama_model_default_params

    def params():
        p = orig()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = bool(extra_bufts)
        return p

    lc.llama_model_default_params = params  # Llama.__init__ reads it from here
    try:
        return Llama(model_path=str(path), **kw)
    finally:
        lc.llama_model_default_params = orig
