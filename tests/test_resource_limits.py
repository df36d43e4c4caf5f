"""Bounded resources: what a user or a file asks for beyond what the machine
can give is refused up front with a message that names it, never a crash,
an OOM kill or a minutes-long hang. (The server's body limit, 413, is tested
in test_server.py; its max_tokens rule in test_server_faults.py.)"""

from __future__ import annotations

import subprocess

import pytest

from helpers.engine_helpers import hearth_binary
from helpers.gguf_files import write_tiny_model

hearthlm = pytest.importorskip("hearthlm")
from hearthlm import LLM, HearthError, SamplingParams  # noqa: E402
from hearthlm.errors import ChatTemplateError  # noqa: E402


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("limits") / "tiny.gguf")


# ------------------------------------------------------------ the context --

def test_a_context_larger_than_memory_is_refused_before_allocating(smollm2_gguf):
    # SmolLM2: 30 layers x 2 x 3 KV heads x 64 x 2 bytes = 23,040 bytes a token
    with pytest.raises(HearthError) as info:
        LLM(str(smollm2_gguf), n_ctx=100_000_000)
    msg = str(info.value)
    assert "would need 2304000000000 bytes (2145.8 GiB)" in msg and "of memory" in msg and "n_ctx" in msg


def test_the_executable_refuses_a_huge_context_at_once(smollm2_gguf):
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-c", "100000000", "-p", "hi", "-n", "2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "would need 2304000000000 bytes" in r.stderr and "lower n_ctx (-c)" in r.stderr


@pytest.mark.parametrize("kwargs", [dict(n_ctx=2 ** 62), dict(n_ctx=2 ** 63 - 1), dict(kv_cache_tokens=2 ** 63 - 1),
                                    dict(n_ctx=10 ** 12)])
def test_contexts_whose_size_overflows_are_refused_naming_the_bytes(tiny, kwargs):
    with pytest.raises(HearthError, match=r"would need .* bytes.* but this machine has \d+ bytes"):
        LLM(str(tiny), **kwargs)


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_ctx=2 ** 64), "n_ctx must be at most 9223372036854775807"),
    (dict(n_threads=100_000), "n_threads must be at most 512"),
    (dict(n_threads=2 ** 40), "n_threads must be at most 2147483647"),
    (dict(max_num_seqs=2 ** 31), "max_num_seqs must be at most 2147483647"),
])
def test_engine_sizes_beyond_their_fields_are_refused(tiny, kwargs, words):
    with pytest.raises((HearthError, ValueError), match=words):
        LLM(str(tiny), **kwargs)


def test_the_executable_refuses_a_hundred_thousand_threads(tiny):
    r = subprocess.run([hearth_binary(), "-m", str(tiny), "-t", "100000", "--bench", "--prompt-tokens", "4",
                        "--gen-tokens", "1"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "n_threads must be at most 512" in r.stderr, r.stderr


# -------------------------------------------------------- sampling sizes --

@pytest.mark.parametrize("field", ["max_tokens", "n", "top_k", "logprobs", "num_beams"])
@pytest.mark.parametrize("value", [2 ** 63, 10 ** 30])
def test_integers_too_large_for_the_engine_are_a_value_error_naming_them(tiny, field, value):
    llm = LLM(str(tiny), n_ctx=64)
    with pytest.raises(ValueError, match=f"{field} must be at most"):
        llm.generate({"prompt_token_ids": [1, 2]}, SamplingParams(**{field: value}))


def test_max_tokens_above_the_context_is_clamped_by_the_api(tiny):
    # vLLM's offline LLM: the completion ends where the context does
    llm = LLM(str(tiny), n_ctx=32)
    prompt = {"prompt_token_ids": [1, 2, 3]}  # the tiny file has no tokenizer
    out = llm.generate(prompt, SamplingParams(max_tokens=10 ** 9, temperature=0, ignore_eos=True))[0].outputs[0]
    # prompt and output fill the context, as vLLM's max_model_len
    assert out.finish_reason == "length" and len(out.token_ids) == 32 - 3


# -------------------------------------------------- chat template budget --

HOSTILE_TEMPLATES = {
    "nested loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "nested loops that print": "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
    "repeated string": "{{ 'x' * 1000 * 1000 * 1000 }}",
    "repeated list": "{{ ([1] * 100000) * 100000 }}",
    "huge power": "{% set a = 10 %}{% set b = 100000000 %}{{ a ** b }}",
    "center filter": "{{ 'x'|center(1000000000) }}",
    "ljust method": "{{ 'x'.ljust(1000000000) }}",
    "percent format": "{{ '%1000000000d' % 1 }}",
    "format filter": "{{ '%1000000000d'|format(1) }}",
    "format method": "{{ '{:1000000000}'.format(1) }}",
    "doubling namespace": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
                          "{% endfor %}{{ ns.s|length }}",
    "doubling with +": "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}"
                       "{% endfor %}{{ ns.s|length }}",
    "doubling macro": "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}"
                      "{% endmacro %}{{ d('x', 60) }}",
    "squaring replace": "{% set s = 'xxxxxxxxxx' %}{{ s|replace('x', s)|replace('x', s)|replace('x', s)"
                        "|replace('x', s)|replace('x', s)|replace('x', s)|replace('x', s) }}",
    "endless recursion": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "endless recursive loop": "{% for x in [1] recursive %}{{ loop([1]) }}{% endfor %}",
    "endless caller recursion": "{% macro g() %}{{ caller() }}{% endmacro %}"
                                "{% macro f() %}{% call g() %}{{ f() }}{% endcall %}{% endmacro %}{{ f() }}",
}


@pytest.mark.parametrize("name", list(HOSTILE_TEMPLATES))
def test_a_template_that_loops_or_builds_a_huge_string_is_stopped(name):
    from hearthlm.chat_template import render_chat_template

    # without the budget these run for minutes or exhaust memory instead of
    # raising; endless recursion under the budget's trace function could
    # overflow the C stack (a segfault seen once in CI) before Python's
    # RecursionError, so the budget stops it first
    with pytest.raises(ChatTemplateError, match="the chat template was stopped"):
        render_chat_template(HOSTILE_TEMPLATES[name], [{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("name", ["endless recursion", "endless recursive loop", "endless caller recursion"])
def test_endless_recursion_is_stopped_by_the_depth_budget(name):
    from hearthlm.chat_template import render_chat_template

    with pytest.raises(ChatTemplateError, match="nested more than 64 calls"):
        render_chat_template(HOSTILE_TEMPLATES[name], [{"role": "user", "content": "hi"}])


def test_the_budget_allows_a_macro_nested_as_deep_as_a_real_schema_and_more():
    from hearthlm.chat_template import render_chat_template

    template = ("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{% else %}bottom{% endif %}{% endmacro %}"
                "{% for m in messages %}{{ f(60) }}{% endfor %}")
    assert render_chat_template(template, [{"role": "user", "content": "hi"}] * 3) == "bottom" * 3


def test_the_budget_leaves_a_long_real_conversation_alone(smollm2_gguf):
    # 2,000 turns through SmolLM2's own template: far below the budget
    llm = LLM(str(smollm2_gguf), n_ctx=64)
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i} " * 20} for i in range(2000)]
    text = llm.render_chat(messages)
    assert text.count("<|im_start|>") == 2002 and "message 1999" in text  # + its default system turn


def test_a_hostile_template_through_llm_chat_is_a_hearth_error(tiny):
    llm = LLM(str(tiny), n_ctx=64)
    with pytest.raises(HearthError, match="ran more than 1000000 steps"):
        llm.chat([{"role": "user", "content": "hi"}], chat_template=HOSTILE_TEMPLATES["nested loops"])
