"""The Python API in vLLM's idioms, on the real SmolLM2 file: LLM(model=...),
chat() returning a list and taking several conversations, one
SamplingParams per prompt, include_stop_str_in_output, get_tokenizer(); and
the one exception class: a prompt too long for the context raises
hearthlm.HearthError from every path, and every part's errors are its
subclasses."""
from __future__ import annotations

import pytest

import hearthlm
from hearthlm import LLM, HearthError, LLMEngine, SamplingParams
from hearthlm.errors import ChatTemplateError, ConvertError, LauncherError, ModelFetchError

GREEDY = dict(temperature=0.0)
PROMPT = "The history of the printing press begins"


@pytest.fixture(scope="module")
def llm(smollm2_gguf):
    return LLM(model=str(smollm2_gguf), n_threads=2, n_ctx=512)


def test_model_is_the_keyword_as_in_vllm(llm, smollm2_gguf):
    assert llm.model_path == str(smollm2_gguf)
    assert LLM(str(smollm2_gguf), n_ctx=64).n_ctx == 64  # the positional path stays


def test_chat_returns_a_list_and_takes_several_conversations(llm):
    one = [{"role": "user", "content": "What is the capital of France?"}]
    two = [{"role": "user", "content": "Name a colour."}]
    single = llm.chat(one, SamplingParams(max_tokens=12, **GREEDY))
    assert isinstance(single, list) and len(single) == 1
    both = llm.chat([one, two], SamplingParams(max_tokens=12, **GREEDY))
    assert [o.text for o in both][0] == single[0].text and len(both) == 2
    assert both[0].prompt == llm.render_chat(one)


def test_include_stop_str_in_output_keeps_a_stop_tokens_text_too(llm):
    # vLLM decodes the stop token into the text when asked (a special one
    # only where special tokens are shown)
    full = llm.generate(PROMPT, SamplingParams(max_tokens=12, ignore_eos=True, **GREEDY))[0]
    at = next(i for i in range(2, 12) if full.token_ids[i] not in full.token_ids[:i])  # its first appearance
    stop_id = full.token_ids[at]
    cut = llm.generate(PROMPT, SamplingParams(max_tokens=12, stop_token_ids=[stop_id], **GREEDY))[0]
    kept = llm.generate(PROMPT, SamplingParams(max_tokens=12, stop_token_ids=[stop_id], include_stop_str_in_output=True,
                                               **GREEDY))[0]
    assert cut.token_ids == kept.token_ids == full.token_ids[:at + 1] and kept.outputs[0].stop_reason == stop_id
    assert kept.text == cut.text + llm.detokenize([stop_id]) and full.text.startswith(kept.text)
    beams = llm.generate(PROMPT, SamplingParams(max_tokens=12, stop_token_ids=[stop_id], num_beams=2,
                                                include_stop_str_in_output=True))[0]  # beam search alike
    assert beams.token_ids[-1] == stop_id and beams.outputs[0].stop_reason == stop_id
    assert beams.text.endswith(llm.detokenize([stop_id]))
    chat = [{"role": "user", "content": "Say hi."}]
    shown = llm.chat(chat, SamplingParams(max_tokens=64, include_stop_str_in_output=True, skip_special_tokens=False,
                                          **GREEDY))[0]
    hidden = llm.chat(chat, SamplingParams(max_tokens=64, include_stop_str_in_output=True, **GREEDY))[0]
    assert shown.finish_reason == "stop" and shown.outputs[0].stop_reason is None  # the model's own end token
    assert shown.text == hidden.text + "<|im_end|>"


def test_min_tokens_holds_back_the_end_token_and_stop_token_ids(llm):
    chat = [{"role": "user", "content": "Say hi."}]
    base = llm.chat(chat, SamplingParams(max_tokens=64, **GREEDY))[0]
    k = len(base.token_ids)  # its last is the end token
    assert base.finish_reason == "stop" and k < 40
    longer = llm.chat(chat, SamplingParams(max_tokens=64, min_tokens=k + 5, **GREEDY))[0]
    assert longer.token_ids[:k - 1] == base.token_ids[:k - 1] and len(longer.token_ids) >= k + 5
    assert base.token_ids[-1] not in longer.token_ids[:k + 5]
    full = llm.generate(PROMPT, SamplingParams(max_tokens=20, ignore_eos=True, **GREEDY))[0]
    stop_id = full.token_ids[2]
    held = llm.generate(PROMPT, SamplingParams(max_tokens=20, stop_token_ids=[stop_id], min_tokens=8, **GREEDY))[0]
    assert stop_id not in held.token_ids[:8] and len(held.token_ids) >= 8
    streamed = "".join(llm.generate(PROMPT, SamplingParams(max_tokens=20, stop_token_ids=[stop_id], min_tokens=8,
                                                           **GREEDY), stream=True))
    assert streamed == held.text
    for bad, words in [(dict(min_tokens=-1), "min_tokens must be an integer >= 0"),
                       (dict(min_tokens=5, max_tokens=3), r"min_tokens \(5\) must be <= max_tokens \(3\)"),
                       (dict(min_tokens=2, num_beams=2), "min_tokens does not work with beam search")]:
        with pytest.raises(HearthError, match=words) as e:
            SamplingParams(**bad)
        assert e.value.param == "min_tokens"


def test_a_stop_string_cuts_a_beams_token_ids_and_logprob_with_its_text(llm):
    prompt = "The capital of France is"
    full = llm.generate(prompt, SamplingParams(num_beams=2, max_tokens=12, ignore_eos=True))[0].outputs[0]
    words = full.text.split()
    assert len(words) >= 4
    stop = words[2]  # inside the answer, so that tokens follow it
    cut = llm.generate(prompt, SamplingParams(num_beams=2, max_tokens=12, ignore_eos=True, stop=[stop]))[0].outputs[0]
    assert cut.finish_reason == "stop" and cut.stop_reason == stop and stop not in cut.text
    # the ids end with the token that completed the stop string, as in sampling
    n = len(cut.token_ids)
    assert cut.token_ids == full.token_ids[:n] and n < len(full.token_ids)
    assert stop in llm.detokenize(cut.token_ids) and stop not in llm.detokenize(cut.token_ids[:-1])
    assert llm.detokenize(cut.token_ids).startswith(cut.text)
    assert cut.cumulative_logprob > full.cumulative_logprob  # the sum over the kept tokens only
    kept = llm.generate(prompt, SamplingParams(num_beams=2, max_tokens=12, ignore_eos=True, stop=[stop],
                                               include_stop_str_in_output=True))[0].outputs[0]
    assert kept.token_ids == cut.token_ids and kept.text == cut.text + stop


def test_bad_words_as_in_vllm(llm):
    prompt = "The capital of France is"
    base = llm.generate(prompt, SamplingParams(max_tokens=24, **GREEDY))[0]
    assert "Paris" in base.text and "The United States" in base.text
    out = llm.generate(prompt, SamplingParams(max_tokens=24, bad_words=["Paris", "The United States"], **GREEDY))[0]
    assert "Paris" not in out.text and "The United States" not in out.text
    # a word's tokens at the start of a text and after a space, each once
    ids = llm.llm_engine.bad_words_ids(["Paris", " Paris"])
    assert ids == [llm.tokenize("Paris", add_special=False), llm.tokenize(" Paris", add_special=False)]
    # the last token of a longer word is masked only after the rest of it
    assert [len(w) for w in llm.llm_engine.bad_words_ids(["The United States"])] == [3, 3]
    streamed = "".join(llm.generate(prompt, SamplingParams(max_tokens=24, bad_words=["Paris"], **GREEDY), stream=True))
    assert streamed == llm.generate(prompt, SamplingParams(max_tokens=24, bad_words=["Paris"], **GREEDY))[0].text
    # where a bad word would leave nothing to draw, it yields
    comma = llm.tokenize(",", add_special=False)
    forced = llm.generate(prompt, SamplingParams(max_tokens=4, allowed_token_ids=comma, bad_words=[","], **GREEDY))[0]
    assert forced.token_ids == comma * 4
    for bad in (dict(bad_words="Paris"), dict(bad_words=[" "])):
        with pytest.raises(HearthError) as e:
            SamplingParams(**bad)
        assert e.value.param == "bad_words"
    with pytest.raises(HearthError, match="bad_words does not work with beam search") as e:  # the core's check
        llm.generate(prompt, SamplingParams(max_tokens=4, bad_words=["x"], num_beams=2))
    assert e.value.param == "bad_words"


def test_logit_bias_and_allowed_token_ids_as_in_vllm(llm):
    base = llm.generate(PROMPT, SamplingParams(max_tokens=8, ignore_eos=True, logprobs=0, **GREEDY))[0]
    first = base.token_ids[0]
    banned = llm.generate(PROMPT, SamplingParams(max_tokens=8, ignore_eos=True, logit_bias={first: -100.0},
                                                 logprobs=1, **GREEDY))[0]
    assert first not in banned.token_ids
    # logprobs stay the model's own (vLLM's default): the banned token is still the most likely
    lp = banned.outputs[0].logprobs[0][first]
    assert lp.rank == 1 and lp.logprob == base.outputs[0].logprobs[0][first].logprob
    forced = llm.generate(PROMPT, SamplingParams(max_tokens=5, ignore_eos=True, logit_bias={42: 100.0}, **GREEDY))[0]
    assert forced.token_ids == [42] * 5
    allowed = [11, 30, 198, 260]
    for seed in range(3):
        out = llm.generate(PROMPT, SamplingParams(max_tokens=12, ignore_eos=True, allowed_token_ids=allowed,
                                                  temperature=1.0, seed=seed))[0]
        assert len(out.token_ids) == 12 and set(out.token_ids) <= set(allowed)
    # the same request alone and among others (each request its own restrictions)
    mixed = llm.generate([PROMPT, PROMPT, "Hello"],
                         [SamplingParams(max_tokens=8, ignore_eos=True, logit_bias={first: -100.0}, **GREEDY),
                          SamplingParams(max_tokens=8, ignore_eos=True, **GREEDY),
                          SamplingParams(max_tokens=8, allowed_token_ids=allowed, **GREEDY)])
    assert mixed[0].token_ids == banned.token_ids and mixed[1].token_ids == base.token_ids
    assert set(mixed[2].token_ids) <= set(allowed)
    for bad, param, words in [
            (dict(logit_bias={10 ** 6: 1.0}), "logit_bias", r"token id 1000000, out of the vocabulary \[0, 49152\)"),
            (dict(allowed_token_ids=[49152]), "allowed_token_ids", "out of the vocabulary"),
            (dict(allowed_token_ids=[2], min_tokens=3), "allowed_token_ids", "only tokens that end the completion")]:
        with pytest.raises(HearthError, match=words) as e:
            llm.generate(PROMPT, SamplingParams(max_tokens=4, **bad))
        assert e.value.param == param
    assert not llm.llm_engine.has_unfinished_requests()


def test_chat_template_variables_continue_final_message_and_misspelt_keywords(llm):
    template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}</{{ m.role }}>{% endfor %}{{ greeting }}"
    chat = [{"role": "user", "content": "Hi"}]
    assert llm.render_chat(chat, chat_template=template, greeting="Hello") == "<user>Hi</user>Hello"
    outs = llm.chat(chat, SamplingParams(max_tokens=1), chat_template=template,
                    chat_template_kwargs={"greeting": "Hey"})  # vLLM's name for template variables
    assert outs[0].prompt == "<user>Hi</user>Hey"
    # and they win over chat()'s own template arguments, as in vLLM
    bare = llm.chat(chat, SamplingParams(max_tokens=1), chat_template_kwargs={"add_generation_prompt": False})
    assert bare[0].prompt == llm.render_chat(chat, add_generation_prompt=False) != llm.render_chat(chat)
    # continue_final_message: the answer goes on from the assistant's last words (transformers' cut)
    started = chat + [{"role": "assistant", "content": "The capital of France is"}]
    text = llm.render_chat(started, add_generation_prompt=False, continue_final_message=True)
    assert text.endswith("<|im_start|>assistant\nThe capital of France is")
    with pytest.raises(HearthError, match="continue_final_message and add_generation_prompt"):
        llm.chat(started, continue_final_message=True)
    # a misspelt parameter is not taken for a template variable and ignored
    with pytest.raises(TypeError, match="did you mean 'sampling_params'"):
        llm.chat(chat, sampling_param=SamplingParams(max_tokens=1))
    for bad in ({"role": "user", "content": "hi"}, None, "hi"):
        with pytest.raises(HearthError, match="messages must be a list"):
            llm.chat(bad)


def test_prompts_of_the_wrong_kind_are_refused_not_guessed(llm):
    for bad, words in [(b"hello", "decode bytes to str first"), (None, "got NoneType"),
                       ({"prompt_token_ids": [504.7]}, "prompt_token_ids must be a list of integer token ids"),
                       ({"prompt_token_ids": ["504"]}, "prompt_token_ids must be a list of integer"),
                       ({"prompt_token_ids": [True]}, "prompt_token_ids must be a list of integer"),
                       ({"prompt_token_ids": [2 ** 63]}, r"prompt token id \d+ is out of range"),
                       ({"prompt": 5}, "prompt must be a str")]:
        with pytest.raises(HearthError, match=words):
            llm.generate(bad, SamplingParams(max_tokens=1))
    assert not llm.llm_engine.has_unfinished_requests()


def test_one_sampling_params_per_prompt(llm):
    outs = llm.generate([PROMPT, PROMPT], [SamplingParams(max_tokens=3, **GREEDY), SamplingParams(max_tokens=7, **GREEDY)])
    assert [len(o.token_ids) for o in outs] == [3, 7]
    assert outs[1].token_ids[:3] == outs[0].token_ids
    with pytest.raises(ValueError, match="one per prompt"):
        llm.generate([PROMPT, PROMPT], [SamplingParams()])


def test_include_stop_str_in_output(llm):
    full = llm.generate(PROMPT, SamplingParams(max_tokens=30, ignore_eos=True, **GREEDY))[0].text
    stop = full.split()[3]
    cut = llm.generate(PROMPT, SamplingParams(max_tokens=30, stop=[stop], **GREEDY))[0]
    kept = llm.generate(PROMPT, SamplingParams(max_tokens=30, stop=[stop], include_stop_str_in_output=True,
                                               **GREEDY))[0]
    assert cut.text == full[: full.find(stop)]
    assert kept.text == full[: full.find(stop)] + stop
    assert kept.outputs[0].stop_reason == stop and kept.finish_reason == "stop"
    streamed = "".join(llm.generate(PROMPT, SamplingParams(max_tokens=30, stop=[stop], include_stop_str_in_output=True,
                                                           **GREEDY), stream=True))
    assert streamed == kept.text


def test_get_tokenizer_encodes_as_the_llm(llm):
    tok = llm.get_tokenizer()
    assert tok.encode(PROMPT.encode(), True, True) == llm.tokenize(PROMPT)
    assert llm.llm_engine.get_tokenizer() is tok


def test_completion_outputs_know_whether_they_finished(llm):
    out = llm.generate(PROMPT, SamplingParams(max_tokens=2, **GREEDY))[0]
    assert out.finished and out.outputs[0].finished()


# ---------------------------------------------------------------------------
# one exception class
# ---------------------------------------------------------------------------

def test_every_part_raises_a_hearth_error():
    assert issubclass(HearthError, ValueError)
    for cls in (ConvertError, ChatTemplateError, ModelFetchError, LauncherError):
        assert issubclass(cls, HearthError), cls
    assert hearthlm.HearthError is hearthlm._core.HearthError  # C++ errors arrive as the same class


def test_a_prompt_too_long_for_the_context_is_a_hearth_error_from_every_path(smollm2_gguf):
    small = LLM(str(smollm2_gguf), n_threads=2, n_ctx=32)
    long_text = "word " * 60
    long_ids = small.tokenize(long_text)
    message = r"the prompt is \d+ tokens, which does not fit in the context of 32"
    with pytest.raises(HearthError, match=message):
        small.generate(long_text, SamplingParams(max_tokens=4))
    with pytest.raises(HearthError, match=message):
        small.generate([long_ids], SamplingParams(max_tokens=4))
    with pytest.raises(HearthError, match=message):
        small.generate(long_text, SamplingParams(max_tokens=4), stream=True)
    with pytest.raises(HearthError, match=message):
        small.chat([{"role": "user", "content": long_text}], SamplingParams(max_tokens=4))
    with pytest.raises(HearthError, match=message):
        small.generate(long_text, SamplingParams(num_beams=2, max_tokens=4))
    engine = LLMEngine(str(smollm2_gguf), n_threads=2, n_ctx=32)
    with pytest.raises(HearthError, match=message):
        engine.add_request("a", long_text, SamplingParams(max_tokens=4))
    with pytest.raises(HearthError, match="do not fit in the context: n_ctx is 32"):
        small.eval(long_ids)
    assert not engine.has_unfinished_requests()


def test_a_bad_file_is_a_hearth_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 10)
    with pytest.raises(HearthError, match="bad.gguf"):
        LLM(str(bad))
    with pytest.raises(HearthError, match="bad.gguf"):
        LLMEngine(str(bad))


def test_prompt_logprobs_are_the_models_log_softmax_of_each_prompt_token(llm):
    np = pytest.importorskip("numpy")
    out = llm.generate([PROMPT], SamplingParams(max_tokens=2, prompt_logprobs=3, **GREEDY), use_tqdm=False)[0]
    ids = out.prompt_token_ids
    assert len(out.prompt_logprobs) == len(ids) and out.prompt_logprobs[0] is None
    llm.reset()
    logits = llm.eval(ids).astype(np.float64)
    llm.reset()
    want = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
        - logits.max(-1, keepdims=True)
    for i in range(1, len(ids)):
        entry = out.prompt_logprobs[i]
        assert abs(entry[ids[i]].logprob - want[i - 1, ids[i]]) < 1e-5
        ranked = sorted((lp.rank, t) for t, lp in entry.items() if t != ids[i] or lp.rank <= 3)
        assert [r for r, _ in ranked][:3] == [1, 2, 3]
    # the same prompt again: the prefix cache must not skip the rows that score it
    again = llm.generate([PROMPT], SamplingParams(max_tokens=2, prompt_logprobs=0, **GREEDY), use_tqdm=False)[0]
    assert [e[t].logprob for e, t in zip(again.prompt_logprobs[1:], ids[1:])] == \
        [e[t].logprob for e, t in zip(out.prompt_logprobs[1:], ids[1:])]
