#!/usr/bin/env python3
"""Quantize a GGUF file with llama.cpp's own quantizer (llama-quantize),
through llama-cpp-python: the K-quant files people download, made here from
an f16/f32 GGUF (for example one `hearth-convert -t f16` wrote), to race and
compare hearth on them.

    python bench/llama_quantize.py IN.gguf OUT.gguf q4_k_m [--threads 2]

Types: the names of llama.cpp's LLAMA_FTYPE_MOSTLY_* (q4_k_m, q5_k_m, q6_k,
q3_k_m, q2_k, q8_0, ...), lower case. Needs llama-cpp-python.
"""
import argparse
import ctypes
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("type", help="q4_k_m, q5_k_m, q6_k, q3_k_m, q2_k, q8_0, ...")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import llama_cpp
    except ImportError:
        sys.exit("llama_quantize: needs llama-cpp-python (pip install llama-cpp-python==0.3.36)")
    ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + a.type.upper(), None)
    if ftype is None:
        sys.exit(f"llama_quantize: unknown type {a.type!r}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = a.threads
    rc = llama_cpp.llama_model_quantize(a.src.encode(), a.dst.encode(), ctypes.byref(params))
    if rc != 0:
        sys.exit(f"llama_quantize: llama.cpp failed ({rc})")
    print(f"llama_quantize: wrote {a.dst}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
