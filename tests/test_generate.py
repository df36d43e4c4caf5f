"""LLM.generate on the real SmolLM2 file (llama.cpp's Q4_1): vLLM-shaped
results, every stop rule with its finish_reason, streaming that concatenates
to the final text (a stop string split across tokens included), seeds,
log-probabilities, the context limit, and multi-turn reuse of the cache."""
from __future__ import annotations

import numpy as np
import pytest

from hearthlm import LLM, CompletionOutput, Logprob, RequestOutput, SamplingParams

GREEDY = dict(temperature=0.0)
PROMPT = "The history of the printing press begins"


@pytest.fixture(scope="module")
def llm(smollm2_gguf):
    # the exact path: with 8-bit activations SmolLM2-135M's greedy answer to
    # the chat below wanders off (so does llama.cpp's) and never ends its turn
    return LLM(str(smollm2_gguf), n_threads=2, n_ctx=512, activations="q16")


@pytest.fixture(scope="module")
def greedy40(llm):
    out = llm.generate(PROMPT, SamplingParams(max_tokens=40, ignore_eos=True, **GREEDY))[0]
    assert len(out.token_ids) == 40
    return out


def streamed(llm, prompt, params):
    pieces = list(llm.generate(prompt, params, stream=True))
    assert all(isinstance(p, str) and p for p in pieces)
    return "".join(pieces)


def test_streams_and_generate_calls_interleaved_on_one_llm_each_get_their_own_text(llm, greedy40):
    other = "Once upon a time"
    params = SamplingParams(max_tokens=12, ignore_eos=True, **GREEDY)
    alone = llm.generate(other, params)[0].outputs[0].text
    forty = SamplingParams(max_tokens=40, ignore_eos=True, **GREEDY)
    # two streams read one after the other: the second's request finished
    # while the first was read, and its text was kept for it
    s1, s2 = llm.generate(PROMPT, forty, stream=True), llm.generate(other, params, stream=True)
    assert "".join(s1) == greedy40.outputs[0].text and "".join(s2) == alone
    # a generate() call in the middle of a stream: neither loses text
    s = llm.generate(PROMPT, forty, stream=True)
    first = next(s)
    assert llm.generate(other, params)[0].outputs[0].text == alone
    assert first + "".join(s) == greedy40.outputs[0].text
    assert not llm.llm_engine.has_unfinished_requests()


def test_results_are_shaped_as_vllms(llm):
    outs = llm.generate(["Hello, my name is", [504, 3458, 282]], SamplingParams(max_tokens=5, **GREEDY))
    assert len(outs) == 2 and all(isinstance(o, RequestOutput) for o in outs)
    first = outs[0]
    assert isinstance(first.outputs[0], CompletionOutput)
    assert first.prompt == "Hello, my name is" and first.prompt_token_ids == llm.tokenize("Hello, my name is")
    assert outs[1].prompt is None and outs[1].prompt_token_ids == [504, 3458, 282]
    for o in outs:
        assert (o.text, o.token_ids, o.finish_reason) == (o.outputs[0].text, o.outputs[0].token_ids, "length")
        assert len(o.token_ids) == 5 and o.text == llm.detokenize(o.token_ids)
        assert o.metrics["generated_tokens"] == 5 and o.metrics["prompt_tokens"] == len(o.prompt_token_ids)


def test_greedy_generate_equals_the_greedy_core(llm, greedy40):
    llm.reset()
    assert greedy40.token_ids == llm.generate_greedy(llm.tokenize(PROMPT), max_tokens=40, stop_at_eos=False)


def test_stop_string_split_across_tokens_is_never_shown(llm, greedy40):
    ids = greedy40.token_ids
    # a stop string made of the end of one token and the start of the next
    pieces = [llm.detokenize(ids[:i]) for i in range(len(ids) + 1)]
    i = next(i for i in range(5, 35) if len(pieces[i]) - len(pieces[i - 1]) >= 3 and len(pieces[i + 1]) - len(pieces[i]) >= 3)
    stop = pieces[i][-2:] + pieces[i + 1][len(pieces[i]):len(pieces[i]) + 2]
    text = greedy40.text
    params = SamplingParams(max_tokens=40, stop=[stop, "never-in-this-text"], **GREEDY)
    out = llm.generate(PROMPT, params)[0]
    assert out.text == text[: text.find(stop)]
    assert (out.finish_reason, out.outputs[0].stop_reason) == ("stop", stop)
    assert out.token_ids == ids[: i + 1]  # the token that completed the stop string is the last
    assert streamed(llm, PROMPT, params) == out.text


def test_stop_token_ids_end_the_completion(llm, greedy40):
    stop_id = greedy40.token_ids[6]
    params = SamplingParams(max_tokens=40, stop_token_ids=[stop_id], **GREEDY)
    out = llm.generate(PROMPT, params)[0]
    first = greedy40.token_ids.index(stop_id)
    assert out.token_ids == greedy40.token_ids[: first + 1]
    assert (out.finish_reason, out.outputs[0].stop_reason) == ("stop", stop_id)
    assert out.text == llm.detokenize(greedy40.token_ids[:first])  # the stop token's text is not shown
    assert streamed(llm, PROMPT, params) == out.text


def test_end_of_turn_token_stops_a_chat_answer(llm, models_dir):
    from conftest import CHAT_FRANCE, render_chat
    prompt = render_chat(models_dir, CHAT_FRANCE)
    params = SamplingParams(max_tokens=100, **GREEDY)
    out = llm.generate(prompt, params)[0]
    # <|im_end|>, the model's own end token: no stop_reason, as in vLLM
    assert out.finish_reason == "stop" and out.outputs[0].stop_reason is None
    assert out.token_ids[-1] == 2 and "<|im_end|>" not in out.text and len(out.token_ids) < 100
    assert streamed(llm, prompt, params) == out.text
    shown = llm.generate(prompt, SamplingParams(max_tokens=100, skip_special_tokens=False, **GREEDY))[0]
    assert shown.token_ids == out.token_ids and shown.text == out.text  # the end token is not part of the text


def test_max_tokens_and_the_context_end_a_completion_with_length(llm, smollm2_gguf, greedy40):
    params = SamplingParams(max_tokens=7, **GREEDY)
    out = llm.generate(PROMPT, params)[0]
    assert out.finish_reason == "length" and out.token_ids == greedy40.token_ids[:7]
    assert streamed(llm, PROMPT, params) == out.text
    small = LLM(str(smollm2_gguf), n_threads=2, n_ctx=20, activations="q16")  # as the llm fixture
    n_prompt = len(small.tokenize(PROMPT))
    params = SamplingParams(max_tokens=None, ignore_eos=True, **GREEDY)
    out = small.generate(PROMPT, params)[0]
    # prompt and output together fill the context, as vLLM's max_model_len
    assert out.finish_reason == "length" and len(out.token_ids) == 20 - n_prompt
    assert out.token_ids == greedy40.token_ids[: len(out.token_ids)]
    assert streamed(small, PROMPT, params) == out.text


def test_a_prompt_longer_than_the_context_is_a_value_error(smollm2_gguf):
    small = LLM(str(smollm2_gguf), n_threads=2, n_ctx=16)
    with pytest.raises(ValueError, match=r"the prompt is \d+ tokens, which does not fit in the context of 16"):
        small.generate("word " * 40, SamplingParams(max_tokens=4))
    with pytest.raises(ValueError, match="prompt is empty"):
        small.generate([[]], SamplingParams(max_tokens=4))


def test_same_seed_same_text_on_any_thread_count(llm, smollm2_gguf):
    params = SamplingParams(temperature=0.9, top_p=0.95, top_k=50, max_tokens=24, seed=1234)
    a = llm.generate(PROMPT, params)[0]
    b = llm.generate(PROMPT, params)[0]
    one_thread = LLM(str(smollm2_gguf), n_threads=1, n_ctx=512).generate(PROMPT, params)[0]
    other = llm.generate(PROMPT, SamplingParams(temperature=0.9, top_p=0.95, top_k=50, max_tokens=24, seed=99))[0]
    assert a.token_ids == b.token_ids == one_thread.token_ids
    assert a.token_ids != other.token_ids
    # the LLM's seed seeds requests that bring none, reproducibly
    x = LLM(str(smollm2_gguf), n_threads=2, n_ctx=512, seed=7)
    y = LLM(str(smollm2_gguf), n_threads=2, n_ctx=512, seed=7)
    p = SamplingParams(temperature=1.0, max_tokens=16)
    assert [o.token_ids for o in x.generate([PROMPT, PROMPT], p)] == [o.token_ids for o in y.generate([PROMPT, PROMPT], p)]


def test_n_completions_from_one_prompt(llm):
    out = llm.generate(PROMPT, SamplingParams(n=3, temperature=1.0, max_tokens=12, seed=5))[0]
    assert [c.index for c in out.outputs] == [0, 1, 2]
    assert len({tuple(c.token_ids) for c in out.outputs}) > 1
    again = llm.generate(PROMPT, SamplingParams(n=3, temperature=1.0, max_tokens=12, seed=5))[0]
    assert [c.token_ids for c in again.outputs] == [c.token_ids for c in out.outputs]


def test_logprobs_are_the_models_log_softmax(llm):
    out = llm.generate(PROMPT, SamplingParams(max_tokens=4, logprobs=3, **GREEDY))[0].outputs[0]
    llm.reset()
    ids = llm.tokenize(PROMPT)
    logits = llm.eval(ids + out.token_ids[:-1])[len(ids) - 1:]
    ref = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) - logits.max(1, keepdims=True)
    for step, (tok, lps) in enumerate(zip(out.token_ids, out.logprobs)):
        top3 = np.argsort(-ref[step])[:3]
        assert set(lps) == {tok, *top3.tolist()}
        for t, v in lps.items():
            assert isinstance(v, Logprob) and abs(v.logprob - ref[step, t]) < 1e-3
            assert v.rank == 1 + int((ref[step] > ref[step, t]).sum())  # vLLM's rank
            assert v.decoded_token == llm.detokenize([t], special=True)
    assert abs(out.cumulative_logprob - sum(lps[t].logprob for t, lps in zip(out.token_ids, out.logprobs))) < 1e-4


def test_a_continued_conversation_reuses_the_cache(llm, models_dir, smollm2_gguf):
    from conftest import render_chat
    turn1 = [{"role": "user", "content": "Name a colour."}]
    prompt1 = render_chat(models_dir, turn1)
    a1 = llm.generate(prompt1, SamplingParams(max_tokens=30, **GREEDY))[0]
    turn2 = turn1 + [{"role": "assistant", "content": a1.text}, {"role": "user", "content": "And another one?"}]
    prompt2 = render_chat(models_dir, turn2)
    a2 = llm.generate(prompt2, SamplingParams(max_tokens=30, **GREEDY))[0]
    assert a2.metrics["reused_tokens"] >= len(llm.tokenize(prompt1))  # the first turn is not computed again
    fresh = LLM(str(smollm2_gguf), n_threads=2, n_ctx=512).generate(prompt2, SamplingParams(max_tokens=30, **GREEDY))[0]
    assert fresh.metrics["reused_tokens"] == 0
    assert fresh.token_ids == a2.token_ids
