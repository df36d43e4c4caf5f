"""Inputs the libFuzzer harnesses of tests/fuzz/ found (or that were written
to reproduce what they look for), fed through the Python API: each must give
a clear HearthError naming the file and what is wrong, not a crash, another
exception or a silent wrong answer. The inputs live in
tests/fuzz/regressions/<harness>/; tests/fuzz/run.sh also replays them as seeds.
"""
from __future__ import annotations

import pathlib

import pytest

from hearthlm import LLM, HearthError

REGRESSIONS = pathlib.Path(__file__).resolve().parent / "fuzz" / "regressions"

# fuzz_gguf inputs: file name -> (LLM keyword arguments, what the error must say)
GGUF_ERRORS = {
    # 4 heads x key_length 2^62 + 2 wrapped around int64 to 8, the width of
    # attn_q, so the weights' shapes passed and the RoPE table asked for 2^61
    # entries (std::length_error, which reached Python as a bare ValueError)
    "head-count-times-key-length-overflows": ({}, r"key_length.* is impossibly large"),
    # tokenizer.ggml.token_type as f32 values: 1e20 made an out-of-range
    # float-to-integer conversion (undefined behaviour), 1.5 would have been
    # read as type 1
    "token-types-are-floats": ({"vocab_only": True}, r"token_type' must be an array of integers"),
}


def test_every_regression_input_has_a_test():
    inputs = {p.name for p in (REGRESSIONS / "fuzz_gguf").iterdir()}
    assert inputs == set(GGUF_ERRORS)


@pytest.mark.parametrize("name", sorted(GGUF_ERRORS))
def test_fuzz_gguf_input_is_refused_with_a_clear_error(name):
    path = REGRESSIONS / "fuzz_gguf" / name
    kwargs, message = GGUF_ERRORS[name]
    with pytest.raises(HearthError, match=message) as err:
        LLM(str(path), n_threads=1, **kwargs)
    assert name in str(err.value)  # names the file
