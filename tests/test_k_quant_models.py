"""Whole models whose weights are K-quants (every K type, as in a Q4_K_M
file): logits against the independent numpy forward pass over the same
blocks (dequantized by the `gguf` package), and every kernel set against the
scalar reference."""

import pytest

from helpers.engine_helpers import rel_max_err
from helpers.gguf_files import write_tiny_model
from helpers.numpy_reference import NumpyReference

from hearthlm import LLM, _core

ARCHS = ["llama", "qwen2"]
PROMPT = [5, 17, 200, 3, 99, 42, 7, 128, 255, 0, 64, 31]
SHAPE = dict(n_embd=256, n_ff=512, n_head=4, n_head_kv=2)  # K rows: multiples of 256


@pytest.fixture(scope="module")
def k_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("kmix")
    return {arch: write_tiny_model(d / f"{arch}-k.gguf", arch=arch, weight_type="k_mix", tied=(arch == "qwen2"),
                                   seed=3, **SHAPE) for arch in ARCHS}


@pytest.mark.parametrize("act", ["q8", "q16"])
@pytest.mark.parametrize("arch", ARCHS)
def test_k_quant_logits_match_numpy_reference(k_models, arch, act):
    before = _core.kernel_name()
    try:
        _core.use_kernels("scalar")
        ref = NumpyReference(k_models[arch], activations=act).logits(PROMPT)
        got = LLM(k_models[arch], n_threads=2, kv_type="f32", activations=act).eval(PROMPT)
    finally:
        _core.use_kernels(before)
    # q16: a 1e-7 difference that lands on a rounding boundary moves one
    # quant of the next layer's input by 1 in 32767; at this width q4_0 files
    # measure up to 2.1e-4 of max|logit| too (q8: 3e-7)
    assert rel_max_err(got, ref) <= (1e-5 if act == "q8" else 3e-4)


@pytest.mark.parametrize("act", ["q8", "q16"])
@pytest.mark.parametrize("arch", ARCHS)
def test_k_quant_models_agree_on_every_kernel_set(k_models, arch, act):
    before = _core.kernel_name()
    try:
        _core.use_kernels("scalar")
        ref = LLM(k_models[arch], n_threads=1, kv_type="f32", activations=act).eval(PROMPT)
        for name in _core.supported_kernels():
            _core.use_kernels(name)
            got = LLM(k_models[arch], n_threads=2, kv_type="f32", activations=act).eval(PROMPT)
            # as test_forward.py: the next layer's activation rounding may
            # amplify a float-rounding difference by one quant step
            assert rel_max_err(got, ref) <= (5e-4 if act == "q16" else 2e-2), name
            assert (got.argmax(1) == ref.argmax(1)).all(), name
    finally:
        _core.use_kernels(before)


def test_k_quant_model_decodes_through_the_cache_as_one_prefill(k_models):
    llm = LLM(k_models["llama"], n_threads=2, kv_type="f32")
    full = llm.eval(PROMPT)
    llm.reset()
    llm.eval(PROMPT[:5])
    step = [llm.eval([t]) for t in PROMPT[5:]]
    for i, row in enumerate(step):
        assert (row[-1] == full[5 + i]).all()
