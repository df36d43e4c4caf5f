"""Structured output in the Python API: SamplingParams(structured_outputs=...)
enforced token by token (llguidance's masks applied in C++ before the
sampler), on the real SmolLM2 file."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

pytest.importorskip("llguidance", reason="structured output needs llguidance (pip install '.[test]')")
jsonschema = pytest.importorskip("jsonschema")

from hearthlm import LLM, SamplingParams, StructuredOutputsParams  # noqa: E402
from hearthlm.errors import StructuredOutputError  # noqa: E402

SCHEMAS = json.loads((pathlib.Path(__file__).parent / "data" / "json_schemas.json").read_text())


@pytest.fixture(scope="module")
def llm(smollm2_gguf):
    return LLM(str(smollm2_gguf), n_threads=2, n_ctx=1024)


def test_every_completion_follows_its_schema_in_one_batch(llm):
    convs, params = [], []
    for name, schema in SCHEMAS.items():
        convs.append([{"role": "user", "content": f"Give me one {name.replace('_', ' ')} as JSON."}])
        params.append(SamplingParams(temperature=1.0, seed=len(convs), max_tokens=300, n=2,
                                     structured_outputs=StructuredOutputsParams(json=schema)))
    outs = llm.chat(convs, params, use_tqdm=False)
    for (name, schema), out in zip(SCHEMAS.items(), outs):
        assert len(out.outputs) == 2
        for c in out.outputs:
            assert c.finish_reason == "stop"
            jsonschema.validate(json.loads(c.text), schema)


def test_regex_and_choice(llm):
    out = llm.generate(["Phone:"], SamplingParams(temperature=1.0, seed=3, max_tokens=20,
                                                  structured_outputs={"regex": r"\d{3}-\d{4}"}), use_tqdm=False)[0]
    assert re.fullmatch(r"\d{3}-\d{4}", out.outputs[0].text) and out.outputs[0].finish_reason == "stop"
    out = llm.generate(["Pick one:"], SamplingParams(temperature=1.0, seed=3, max_tokens=20,
                                                     structured_outputs={"choice": ["red", "green", "blue"]}),
                       use_tqdm=False)[0]
    assert out.outputs[0].text in ("red", "green", "blue")


def test_a_structured_request_is_batch_invariant(llm):
    p = SamplingParams(temperature=1.0, seed=11, max_tokens=200, structured_outputs={"json": SCHEMAS["book"]})
    conv = [{"role": "user", "content": "A book as JSON."}]
    alone = llm.chat(conv, p, use_tqdm=False)[0].outputs[0].text
    crowd = llm.chat([conv] + [[{"role": "user", "content": f"Tell me about the number {i}."}] for i in range(5)],
                     [p] + [SamplingParams(temperature=0.8, seed=i, max_tokens=40) for i in range(5)],
                     use_tqdm=False)
    assert crowd[0].outputs[0].text == alone


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(structured_outputs={"json": {"type": "nonsense"}}), StructuredOutputError, "structured_outputs"),
    (dict(structured_outputs={"regex": "(unclosed"}), StructuredOutputError, "structured_outputs"),
    (dict(structured_outputs={"json": {"type": "object"}}, num_beams=2), ValueError, "beam search"),
    (dict(structured_outputs={"json_object": True}, ignore_eos=True), ValueError, "ignore_eos"),
])
def test_bad_constraints_are_clear_errors_and_leave_nothing_behind(llm, kwargs, error, words):
    # (conftest checks after every test that the engine holds no request or block)
    with pytest.raises(error) as e:
        llm.generate(["x"], SamplingParams(max_tokens=4, **kwargs), use_tqdm=False)
    assert words in str(e.value)


def test_structured_outputs_params_takes_exactly_one_constraint():
    with pytest.raises(ValueError, match="exactly one"):
        StructuredOutputsParams()
    with pytest.raises(ValueError, match="exactly one"):
        StructuredOutputsParams(regex="a", choice=["b"])


def test_the_server_compiles_a_grammar_off_the_engine_thread(smollm2_gguf):
    # a 200-tool schema compiles for ~0.4 s: on the thread that steps, every
    # stream would wait for it
    import asyncio
    import threading

    from hearthlm import LLMEngine
    from hearthlm.server.async_engine import AsyncEngine

    engine = LLMEngine(str(smollm2_gguf), n_threads=2, n_ctx=256)
    compiled_on = []
    compile_matchers = engine.structured_matchers

    def recording(params):
        compiled_on.append(threading.current_thread().name)
        return compile_matchers(params)

    engine.structured_matchers = recording
    async_engine = AsyncEngine(engine)

    async def run():
        stream = await async_engine.add("r", {"prompt": "Answer:"},
                                        SamplingParams(max_tokens=8, structured_outputs={"regex": "yes|no"}))
        return [o async for o in stream]

    try:
        outs = asyncio.run(run())
    finally:
        async_engine.shutdown()
    assert "".join(o.outputs[0].text for o in outs) in ("yes", "no")  # each output holds what is new
    assert compiled_on and "hearth-engine" not in compiled_on
