"""Text in, text out on the real SmolLM2 model: prompts given as text are
tokenized by hearth's C++ tokenizer, and the first 64 greedy tokens equal
transformers' on the same f32 weights, through the Python API and through
`hearth -p` (which prints them as text); the shared Q4_1 file tokenizes every
prompt exactly as llama.cpp does."""
from __future__ import annotations

import subprocess

import pytest

from conftest import CHAT_MESSAGES, REAL_TEXT, render_chat
from helpers.engine_helpers import hearth_binary

N_NEW = 64

PROMPTS = {
    "story": "Once upon a time, in a small village by the sea, there lived",
    "facts": "The three primary colours are red, blue and",
    "code": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "numbers": "Counting in French: un, deux, trois, quatre,",
    "prose": REAL_TEXT[:400],
}


@pytest.fixture(scope="module")
def prompts(models_dir):
    p = dict(PROMPTS)
    p["chatml"] = render_chat(models_dir, CHAT_MESSAGES)  # <|im_start|> ... as text
    return p


@pytest.fixture(scope="module")
def f32_llm(hearth_llm_cls, smollm2_f32_gguf):
    return hearth_llm_cls(str(smollm2_f32_gguf), n_threads=2, n_ctx=1024, kv_type="f32")


def _hf_ids(smollm2_tokenizer, text):
    return smollm2_tokenizer.encode(text, add_special_tokens=False).ids


def _until_eos(ids, eos):
    return ids[: ids.index(eos)] if eos in ids else ids


@pytest.mark.parametrize("name", list(PROMPTS) + ["chatml"])
def test_greedy_from_text_equals_transformers(name, prompts, f32_llm, smollm2_tokenizer, hf_ref_cache):
    text = prompts[name]
    ids = f32_llm.tokenize(text)
    assert ids == _hf_ids(smollm2_tokenizer, text)  # SmolLM2 adds no BOS
    want = hf_ref_cache.greedy(ids, N_NEW, stop_at_eos=False)
    f32_llm.reset()
    got = f32_llm.generate_greedy(ids, max_tokens=N_NEW, stop_at_eos=False)
    assert got == want, (f32_llm.detokenize(got), smollm2_tokenizer.decode(want))


@pytest.mark.parametrize("name", list(PROMPTS) + ["chatml"])
def test_hearth_p_prints_transformers_greedy_text(name, prompts, smollm2_f32_gguf, smollm2_tokenizer, hf_ref_cache):
    text = prompts[name]
    ids = _hf_ids(smollm2_tokenizer, text)
    want_ids = _until_eos(hf_ref_cache.greedy(ids, N_NEW, stop_at_eos=False), 2)  # <|im_end|> ends the answer
    want = smollm2_tokenizer.decode(want_ids, skip_special_tokens=True)
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_f32_gguf), "-p", text, "--no-chat", "--temp", "0",
                        "-n", str(N_NEW), "--kv-type", "f32", "-t", "2", "-c", "1024"], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode("utf-8")
    assert out.endswith("\n")
    assert out[:-1] == want


def test_the_llama_cpp_file_tokenizes_every_prompt_as_llama_cpp(prompts, smollm2_gguf, hearth_llm_cls, llama_cpp):
    lc = llama_cpp.Llama(str(smollm2_gguf), vocab_only=True, verbose=False)
    llm = hearth_llm_cls(str(smollm2_gguf), vocab_only=True)
    for name, text in prompts.items():
        assert llm.tokenize(text) == lc.tokenize(text.encode(), add_bos=True, special=True), name
        assert llm.tokenize(text, parse_special=False) == lc.tokenize(text.encode(), add_bos=True, special=False), name


# ---------------------------------------------------------------------------
# the generation API on the f32 weights
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["story", "prose"])
def test_generate_100_greedy_tokens_from_text_equal_transformers(name, prompts, f32_llm, hf_ref_cache):
    from hearthlm import SamplingParams
    text = prompts[name]
    out = f32_llm.generate(text, SamplingParams(temperature=0, max_tokens=100, ignore_eos=True))[0]
    want = hf_ref_cache.greedy(out.prompt_token_ids, 100, stop_at_eos=False)
    assert out.token_ids == want
    assert out.text == f32_llm.detokenize(want)


def test_chat_answers_the_capital_of_france_with_paris(f32_llm, smollm2_tokenizer, hf_ref_cache, france_chat_ids):
    from conftest import CHAT_FRANCE
    from hearthlm import SamplingParams
    params = SamplingParams(temperature=0, max_tokens=32)
    out = f32_llm.chat(CHAT_FRANCE, params)[0]
    assert out.prompt_token_ids == france_chat_ids  # the model's template, rendered as transformers does
    want = hf_ref_cache.greedy(france_chat_ids, 32, stop_at_eos=True)
    assert out.token_ids == want
    assert "Paris" in out.text and out.finish_reason == "stop"
    assert "".join(f32_llm.chat(CHAT_FRANCE, params, stream=True)) == out.text
