"""hearth-server against the official openai client, on the real SmolLM2
file, tested the way vLLM tests its server: a real process on a free port,
real HTTP, the client's own parsing."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai", reason="the server tests need the openai client (pip install '.[test]')")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi", reason="the server needs its extra (pip install '.[server]')")

from helpers.server_process import ServerProcess  # noqa: E402

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def server(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "2", "-c", "2048", "--max-num-seqs", "16"])
    yield s
    assert s.stop() == 0, "".join(s.log)[-2000:]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.api, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def model_name(client):
    return client.models.list().data[0].id


def http(server, method, path, body=None, headers=None, raw: bytes = None):
    """(status, parsed JSON or text) of one request, errors included."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(server.url + path, data=data, method=method,
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def metric(server, name: str) -> float:
    _, text = http(server, "GET", "/metrics")
    m = re.search(rf"^hearth:{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    assert m, f"hearth:{name} missing from /metrics"
    return float(m.group(1))


def wait_idle(server, timeout=30.0):
    """Running and waiting back to 0 and every KV block back in the pool."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (metric(server, "num_requests_running") == 0 and metric(server, "num_requests_waiting") == 0
                and metric(server, "kv_blocks_used") == 0):
            return
        time.sleep(0.1)
    raise AssertionError("the server did not come back to idle: a leaked request or KV block")


# ------------------------------------------------------------ the seed's example --

def test_the_two_turn_example_works_with_the_official_client(server, model_name):
    client = openai.OpenAI(base_url=server.api, api_key="none")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    first = client.chat.completions.create(model=model_name, messages=messages, max_tokens=48, temperature=0)
    answer = first.choices[0].message.content
    assert answer and first.choices[0].message.role == "assistant"
    messages += [{"role": "assistant", "content": answer}, {"role": "user", "content": "And of Italy?"}]
    text = ""
    for chunk in client.chat.completions.create(model=model_name, messages=messages, max_tokens=48,
                                                temperature=0, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text
    wait_idle(server)


def test_startup_line_names_address_model_and_kernels(server):
    line = server.startup_line
    assert "SmolLM2-135M-Instruct" in line and "http://127.0.0.1:" in line
    assert re.search(r"kernels (scalar|avx2|avx512|amx)", line)


# ------------------------------------------------------------------- content --

def test_usage_counts_are_exact(server, client, model_name):
    r = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=20, temperature=0,
                                       logprobs=True)
    status, tok = http(server, "POST", "/tokenize", {"messages": QUESTION})
    assert status == 200
    assert r.usage.prompt_tokens == tok["count"]
    assert r.usage.completion_tokens == len(r.choices[0].logprobs.content)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streamed_text_equals_non_streamed_text_for_the_same_seed(client, model_name):
    kw = dict(model=model_name, messages=QUESTION, max_tokens=40, temperature=1.0, seed=1234)
    whole = client.chat.completions.create(**kw).choices[0].message.content
    pieces, finishes = [], []
    for chunk in client.chat.completions.create(stream=True, **kw):
        for c in chunk.choices:
            if c.delta.content:
                pieces.append(c.delta.content)
            if c.finish_reason is not None:
                finishes.append(c.finish_reason)
    assert "".join(pieces) == whole
    assert len(finishes) == 1  # finish_reason exactly once


def test_include_usage_gives_a_final_usage_chunk(client, model_name):
    chunks = list(client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=10, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 10
    assert all(c.usage is None for c in chunks[:-1])


def test_streamed_logprobs_add_up_to_the_text(client, model_name):
    text, tokens = "", []
    for chunk in client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=30, temperature=0,
                                                stream=True, logprobs=True, top_logprobs=3):
        for c in chunk.choices:
            text += c.delta.content or ""
            if c.logprobs:
                for entry in c.logprobs.content:
                    tokens.append(entry.token)
                    assert len(entry.top_logprobs) == 3
                    assert entry.top_logprobs[0].logprob >= entry.logprob - 1e-6
    assert "".join(tokens) == text


def test_n_3_gives_three_choices(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=12, temperature=1.0,
                                       seed=5, n=3)
    assert sorted(c.index for c in r.choices) == [0, 1, 2]
    counted = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=12, temperature=1.0,
                                             seed=5, n=3, logprobs=True)
    assert counted.usage.completion_tokens == sum(len(c.logprobs.content) for c in counted.choices)
    streamed = {0: "", 1: "", 2: ""}
    finishes = {0: 0, 1: 0, 2: 0}
    for chunk in client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=12,
                                                temperature=1.0, seed=5, n=3, stream=True):
        for c in chunk.choices:
            streamed[c.index] += c.delta.content or ""
            finishes[c.index] += c.finish_reason is not None
    assert streamed == {c.index: c.message.content for c in r.choices}
    assert finishes == {0: 1, 1: 1, 2: 1}


def test_a_stop_string_split_across_tokens_never_reaches_a_delta(client, model_name):
    kw = dict(model=model_name, prompt="The capital of France is", max_tokens=30, temperature=0)
    r = client.completions.create(logprobs=0, **kw)
    tokens = r.choices[0].logprobs.tokens
    # a stop string that starts inside one token and ends inside the next
    i = next(i for i in range(1, len(tokens) - 1) if len(tokens[i].strip()) >= 2 and len(tokens[i + 1]) >= 1)
    stop = tokens[i][1:] + tokens[i + 1][:1]
    assert stop.strip()
    text = "".join(tokens)
    want = text[:text.index(stop)]
    deltas = [c.choices[0].text for c in client.completions.create(stream=True, stop=[stop], **kw) if c.choices]
    assert "".join(deltas) == want
    assert not any(stop in d for d in deltas)
    done = client.completions.create(stop=[stop], **kw).choices[0]
    assert done.text == want and done.finish_reason == "stop"


def test_completions_echo_logprobs_and_several_prompts(client, model_name):
    r = client.completions.create(model=model_name, prompt=["The capital of France is", "One, two, three,"],
                                  max_tokens=5, temperature=0, n=2, echo=True)
    assert sorted(c.index for c in r.choices) == [0, 1, 2, 3]
    by_index = {c.index: c.text for c in r.choices}
    assert by_index[0].startswith("The capital of France is") and by_index[2].startswith("One, two, three,")
    assert by_index[0] == by_index[1]  # greedy: both completions agree
    lp = client.completions.create(model=model_name, prompt="The capital of France is", max_tokens=6,
                                   temperature=0, logprobs=2).choices[0]
    assert "".join(lp.logprobs.tokens) == lp.text
    assert lp.logprobs.text_offset == [sum(len(t) for t in lp.logprobs.tokens[:i]) for i in range(6)]
    assert all(len(t) == 2 for t in lp.logprobs.top_logprobs)


def test_tokenize_and_detokenize_round_trip(server):
    status, tok = http(server, "POST", "/tokenize", {"prompt": "Hello, world!"})
    assert status == 200 and tok["count"] == len(tok["tokens"]) and tok["max_model_len"] == 2048
    status, text = http(server, "POST", "/detokenize", {"tokens": tok["tokens"]})
    assert status == 200 and text["prompt"].endswith("Hello, world!")


def test_detokenize_shows_special_tokens_and_tokenize_takes_text_parts(server):
    # vLLM's /detokenize is transformers' decode: special tokens as their text
    _, tok = http(server, "POST", "/tokenize", {"messages": QUESTION})
    status, text = http(server, "POST", "/detokenize", {"tokens": tok["tokens"]})
    assert status == 200 and text["prompt"].startswith("<|im_start|>") and "<|im_end|>" in text["prompt"]
    # content as text parts: their texts joined by newlines, as the chat endpoint (and vLLM) renders them
    parts = [{"role": "user", "content": [{"type": "text", "text": "Say"}, {"type": "text", "text": "hello"}]}]
    status, by_parts = http(server, "POST", "/tokenize", {"messages": parts})
    _, joined = http(server, "POST", "/tokenize", {"messages": [{"role": "user", "content": "Say\nhello"}]})
    assert status == 200 and by_parts["tokens"] == joined["tokens"]
    # chat_template_kwargs win over add_generation_prompt, as in vLLM
    _, bare = http(server, "POST", "/tokenize", {"messages": QUESTION,
                                                 "chat_template_kwargs": {"add_generation_prompt": False}})
    assert bare["count"] < tok["count"] and tok["tokens"][:bare["count"]] == bare["tokens"]


def test_completion_top_logprobs_hold_the_chosen_token(client, model_name):
    # OpenAI's and vLLM's completions: the chosen token and the k most likely
    for k in (0, 1, 3):
        lp = client.completions.create(model=model_name, prompt="The sea is", max_tokens=8, temperature=1.8,
                                       seed=3, logprobs=k).choices[0].logprobs
        for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
            assert top[token] == logprob and k <= len(top) <= k + 1, (k, token, top)


def test_the_chat_page_is_served_at_the_root(server):
    req = urllib.request.Request(server.url + "/")
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 200 and r.headers["content-type"].startswith("text/html")
        page = r.read().decode()
    assert "hearth chat" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)  # offline: nothing fetched from elsewhere


def test_health_models_and_metrics(server, model_name):
    assert http(server, "GET", "/health")[0] == 200
    status, models = http(server, "GET", "/v1/models")
    assert status == 200 and models["data"][0]["id"] == model_name and models["data"][0]["max_model_len"] == 2048
    # one request of its own, so that every histogram has a sample whatever ran before
    status, _ = http(server, "POST", "/v1/completions", {"model": model_name, "prompt": "Hi", "max_tokens": 3})
    assert status == 200
    _, text = http(server, "GET", "/metrics")
    for name in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc", "prefix_cache_queries_total",
                 "prefix_cache_hits_total", "prompt_tokens_total", "generation_tokens_total",
                 "request_success_total", "time_to_first_token_seconds_bucket",
                 "inter_token_latency_seconds_bucket", "e2e_request_latency_seconds_bucket",
                 "request_queue_time_seconds_bucket"):
        assert f"hearth:{name}" in text, name


# -------------------------------------------------------------------- errors --

@pytest.mark.parametrize("body, param", [
    ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"n": 0}, "n"),
    ({"presence_penalty": 5}, "presence_penalty"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"temperature": "hot"}, "temperature"),
    ({"messages": []}, "messages"),
    ({"messages": "hello"}, "messages"),
    ({"stop": 5}, "stop"),
    ({"stream_options": {"include_usage": True}}, "stream_options"),
])
def test_a_bad_parameter_is_a_400_naming_it(server, model_name, body, param):
    status, err = http(server, "POST", "/v1/chat/completions",
                       {"model": model_name, "messages": QUESTION, "max_tokens": 4, **body})
    assert status == 400, err
    assert err["error"]["param"] == param and param in err["error"]["message"]


@pytest.mark.parametrize("path, body, param", [
    ("/v1/chat/completions", {"chat_template_kwargs": {"messages": 1}}, "chat_template_kwargs"),
    ("/v1/chat/completions", {"chat_template_kwargs": {"template": "x"}}, "chat_template_kwargs"),
    ("/v1/chat/completions", {"chat_template_kwargs": {"tools": "x"}}, "chat_template_kwargs"),
    ("/v1/chat/completions", {"chat_template_kwargs": {"documents": 5}}, "chat_template_kwargs"),
    ("/v1/chat/completions", {"chat_template_kwargs": {"add_generation_prompt": "yes"}}, "chat_template_kwargs"),
    ("/tokenize", {"messages": []}, "messages"),
    ("/v1/completions", {"prompt": [[]]}, "prompt"),
    ("/v1/completions", {"prompt": [[1, 2], []]}, "prompt"),
    ("/v1/completions", {"prompt": [1, 10 ** 9]}, "prompt"),  # past the vocabulary: the core's check
    ("/v1/completions", {"prompt": [2 ** 63]}, "prompt"),  # past int64
])
def test_bad_template_arguments_and_empty_prompts_are_400s(server, model_name, path, body, param):
    base = {"model": model_name, "max_tokens": 2}
    if path == "/v1/chat/completions":
        base["messages"] = QUESTION
    if path == "/tokenize":
        base = {}
    status, err = http(server, "POST", path, {**base, **body})
    assert status == 400, err
    assert err["error"]["param"] == param and err["error"]["type"] == "invalid_request_error"


def test_min_tokens_as_vllms_extension(client, model_name):
    hi = [{"role": "user", "content": "Say hi."}]  # a short greedy answer that ends with the end token
    base = client.chat.completions.create(model=model_name, messages=hi, max_tokens=64, temperature=0)
    assert base.choices[0].finish_reason == "stop"
    k = base.usage.completion_tokens
    r = client.chat.completions.create(model=model_name, messages=hi, max_tokens=64, temperature=0,
                                       extra_body={"min_tokens": k + 4})
    assert r.usage.completion_tokens >= k + 4
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=3,
                                       extra_body={"min_tokens": 5})
    assert e.value.body["param"] == "min_tokens"


def test_logit_bias_as_openai_and_allowed_token_ids_as_vllm(client, server, model_name):
    base = client.completions.create(model=model_name, prompt="The capital of France is", max_tokens=4, temperature=0)
    first = client.completions.create(model=model_name, prompt="The capital of France is", max_tokens=1, temperature=0,
                                      logprobs=0).choices[0].logprobs.tokens[0]
    first_id = http(server, "POST", "/tokenize", {"prompt": first, "add_special_tokens": False})[1]["tokens"][0]
    banned = client.completions.create(model=model_name, prompt="The capital of France is", max_tokens=4,
                                       temperature=0, logit_bias={str(first_id): -100})
    assert not banned.choices[0].text.startswith(first) and banned.choices[0].text != base.choices[0].text
    # OpenAI's range is [-100, 100]: beyond it is clamped, as vLLM does
    forced = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=3, temperature=0,
                                            logit_bias={"42": 500})
    token_42 = http(server, "POST", "/detokenize", {"tokens": [42]})[1]["prompt"]
    assert forced.choices[0].message.content == token_42 * 3 and forced.choices[0].finish_reason == "length"
    # clamped to OpenAI's range [-100, 100], as vLLM clamps
    from hearthlm.server.protocol import ChatCompletionRequest
    body = ChatCompletionRequest(messages=QUESTION, logit_bias={"42": 500, "7": -1e9, "9": 2.5})
    assert body.sampling_params().logit_bias == {42: 100.0, 7: -100.0, 9: 2.5}
    only = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=6, temperature=1.0, seed=1,
                                          extra_body={"allowed_token_ids": [28, 29, 30]})
    assert set(only.choices[0].message.content) <= set(",-.")
    kept = client.completions.create(model=model_name, prompt="The capital of France is", max_tokens=4,
                                     temperature=0, extra_body={"bad_words": [first.strip()]})
    assert first.strip() not in kept.choices[0].text  # vLLM's bad_words
    for body in [{"logit_bias": {"abc": 1}}, {"logit_bias": {"999999": 1}}, {"logit_bias": {"-1": 1}},
                 {"allowed_token_ids": []}, {"allowed_token_ids": [999999]}, {"bad_words": [""]}]:
        status, err = http(server, "POST", "/v1/chat/completions",
                           {"model": model_name, "messages": QUESTION, "max_tokens": 2, **body})
        assert status == 400 and err["error"]["param"] == next(iter(body)), (body, err)


def test_top_logprobs_0_without_logprobs_is_accepted_as_in_vllm(server, model_name):
    status, body = http(server, "POST", "/v1/chat/completions",
                        {"model": model_name, "messages": QUESTION, "max_tokens": 2, "top_logprobs": 0})
    assert status == 200 and body["choices"][0]["logprobs"] is None


def test_chat_template_kwargs_override_add_generation_prompt(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=2, temperature=0,
                                       extra_body={"chat_template_kwargs": {"add_generation_prompt": False}})
    with_prompt = client.chat.completions.create(model=model_name, messages=QUESTION, max_tokens=2, temperature=0)
    assert r.usage.prompt_tokens < with_prompt.usage.prompt_tokens


def test_malformed_bodies_are_400_never_500(server):
    for raw in (b"{not json", b"[]", b"", b'{"messages": [{"content": "no role"}]}', b'{"prompt": null}'):
        for path in ("/v1/chat/completions", "/v1/completions"):
            status, err = http(server, "POST", path, raw=raw)
            assert status == 400, (path, raw, err)
            assert err["error"]["type"] == "invalid_request_error"


def test_a_prompt_over_the_context_is_a_400(server, client, model_name):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=model_name, prompt="hello " * 3000, max_tokens=4)
    assert "context" in str(e.value) and e.value.body["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model_name, messages=[{"role": "user", "content": "hello " * 3000}])
    assert e.value.body["param"] == "messages"
    status, err = http(server, "POST", "/v1/completions", {"prompt": "hi", "n": 5000, "max_tokens": 2000})
    assert status == 400 and err["error"]["param"] == "n"


def test_an_unknown_model_is_a_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9", messages=QUESTION, max_tokens=4)
    assert e.value.body["param"] == "model" and e.value.body["code"] == "model_not_found"
    assert "gpt-9" in e.value.body["message"]


def test_api_key_body_limit_and_busy_queue(smollm2_gguf, model_name):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "256", "--api-key", "sesame",
                       "--max-body-bytes", "2000"])
    try:
        status, err = http(s, "POST", "/v1/chat/completions", {"messages": QUESTION, "max_tokens": 2})
        assert status == 401 and err["error"]["type"] == "authentication_error"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.api, api_key="wrong", max_retries=0).models.list()
        ok = openai.OpenAI(base_url=s.api, api_key="sesame", max_retries=0)
        assert ok.chat.completions.create(model=ok.models.list().data[0].id, messages=QUESTION,
                                          max_tokens=2).choices[0].finish_reason == "length"
        status, err = http(s, "POST", "/v1/completions", {"prompt": "x" * 5000}, {"Authorization": "Bearer sesame"})
        assert status == 413 and "2000 bytes" in err["error"]["message"]
        assert http(s, "GET", "/health")[0] == 200  # no key needed outside /v1
    finally:
        assert s.stop() == 0


def test_a_full_waiting_queue_is_a_503(smollm2_gguf):
    from starlette.testclient import TestClient

    from hearthlm import LLMEngine
    from hearthlm.server import create_app

    app = create_app(LLMEngine(str(smollm2_gguf), n_threads=1, n_ctx=256), "m", max_waiting=0)
    with TestClient(app) as c:
        r = c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
    assert r.status_code == 503 and "busy" in r.json()["error"]["message"]
    # the limit counts HTTP requests: one request's several prompts never refuse it
    app = create_app(LLMEngine(str(smollm2_gguf), n_threads=1, n_ctx=256), "m", max_waiting=1)
    with TestClient(app) as c:
        for _ in range(3):
            r = c.post("/v1/completions", json={"prompt": ["a", "b", "c"], "max_tokens": 2})
            assert r.status_code == 200 and len(r.json()["choices"]) == 3, r.text


# ---------------------------------------------------- the engine underneath --

def test_a_client_that_disconnects_mid_stream_frees_its_blocks(server, model_name):
    wait_idle(server)
    body = json.dumps({"model": model_name, "prompt": "Once upon a time", "max_tokens": 1500,
                       "ignore_eos": True, "stream": True}).encode()
    req = urllib.request.Request(server.url + "/v1/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    resp = urllib.request.urlopen(req, timeout=60)
    for _ in range(5):
        assert resp.readline() is not None
    assert metric(server, "num_requests_running") == 1 and metric(server, "kv_blocks_used") > 0
    aborted_before = aborted_requests(server)
    resp.close()  # the client goes away
    wait_idle(server, timeout=20)
    assert aborted_requests(server) == aborted_before + 1  # request_success_total{finished_reason="abort"}


def aborted_requests(server) -> float:
    _, text = http(server, "GET", "/metrics")
    m = re.search(r'^hearth:request_success_total{[^}]*finished_reason="abort"[^}]*} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_a_short_request_finishes_while_a_long_one_still_runs(server, client, model_name):
    # continuous batching: the short request joins the running batch instead
    # of waiting for the long one to end (an order of events, not a timing)
    events = []
    started = threading.Event()

    def long_one():
        for i, chunk in enumerate(client.completions.create(model=model_name, prompt="Once upon a time",
                                                            max_tokens=1000, temperature=0, stream=True,
                                                            extra_body={"ignore_eos": True})):
            if i == 3:
                started.set()
        events.append("long done")

    t = threading.Thread(target=long_one)
    t.start()
    assert started.wait(60)
    r = client.completions.create(model=model_name, prompt="Hi", max_tokens=5, temperature=0)
    events.append("short done")
    t.join(120)
    assert events == ["short done", "long done"]
    assert r.choices[0].finish_reason == "length"


def test_batch_invariance_over_http(client, model_name):
    greedy = dict(model=model_name, prompt="The three primary colours are", max_tokens=24, temperature=0)
    seeded = dict(model=model_name, prompt="Write a word:", max_tokens=24, temperature=1.0, seed=99)
    alone_greedy = client.completions.create(**greedy).choices[0].text
    alone_seeded = client.completions.create(**seeded).choices[0].text

    def other(i):
        return client.completions.create(model=model_name, prompt=f"Story number {i}: " + "once " * (i * 7),
                                         max_tokens=20 + i, temperature=0.7, seed=i).choices[0].text

    with ThreadPoolExecutor(16) as pool:
        others = [pool.submit(other, i) for i in range(14)]
        g = pool.submit(lambda: client.completions.create(**greedy).choices[0].text)
        s = pool.submit(lambda: client.completions.create(**seeded).choices[0].text)
        assert g.result() == alone_greedy
        assert s.result() == alone_seeded
        for f in others:
            f.result()


def test_prefix_cache_over_http(server, client, model_name):
    system = {"role": "system", "content": "You are a terse assistant. " + "Answer in one word. " * 40}
    first = client.chat.completions.create(model=model_name, messages=[system, QUESTION[0]], max_tokens=2)
    second = client.chat.completions.create(model=model_name,
                                            messages=[system, {"role": "user", "content": "And Spain?"}],
                                            max_tokens=2)
    assert first.usage.prompt_tokens > 200
    assert second.usage.prompt_tokens_details.cached_tokens >= 192  # the shared full blocks
    assert metric(server, "prefix_cache_hits_total") >= second.usage.prompt_tokens_details.cached_tokens


def test_without_a_model_it_serves_the_default_one(models_dir):
    # HEARTH_TEST_MODELS holds the default model's file: nothing is fetched
    s = ServerProcess(["-t", "1", "-c", "256"])
    try:
        assert "SmolLM2-135M-Instruct" in s.startup_line
        assert http(s, "GET", "/health")[0] == 200
    finally:
        assert s.stop() == 0


def test_ctrl_c_stops_the_server_cleanly(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "256"])
    assert http(s, "GET", "/health")[0] == 200
    assert s.stop() == 0


# --------------------------------------------------------- structured output --

SCHEMAS = json.loads((__import__("pathlib").Path(__file__).parent / "data" / "json_schemas.json").read_text())


def test_json_schema_outputs_always_parse_and_validate(client, model_name):
    jsonschema = pytest.importorskip("jsonschema")

    def ask(name, seed):
        r = client.chat.completions.create(
            model=model_name, temperature=1.0, seed=seed, max_tokens=400,
            messages=[{"role": "user", "content": f"Give me one {name.replace('_', ' ')} as JSON."}],
            response_format={"type": "json_schema", "json_schema": {"name": name, "schema": SCHEMAS[name],
                                                                    "strict": True}})
        return name, r.choices[0]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: ask(*a), [(name, seed) for name in SCHEMAS for seed in range(10)]))
    assert len(results) == 50
    for name, choice in results:
        assert choice.finish_reason == "stop", (name, choice.message.content)
        jsonschema.validate(json.loads(choice.message.content), SCHEMAS[name])


def test_json_object_and_vllm_structured_outputs(client, model_name):
    r = client.chat.completions.create(model=model_name, messages=QUESTION, temperature=1.0, seed=2, max_tokens=300,
                                       response_format={"type": "json_object"})
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    r = client.completions.create(model=model_name, prompt="Is the sky green?", max_tokens=10, temperature=1.0,
                                  seed=4, extra_body={"structured_outputs": {"choice": ["yes", "no"]}})
    assert r.choices[0].text in ("yes", "no")
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=model_name, prompt="Phone:", max_tokens=20, temperature=1.0, seed=4, stream=True,
        extra_body={"structured_outputs": {"regex": r"[0-9]{3}-[0-9]{4}"}}) if c.choices)
    assert re.fullmatch(r"[0-9]{3}-[0-9]{4}", streamed)


@pytest.mark.parametrize("body, param", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}},
     "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"response_format": {"type": "json_object"}, "ignore_eos": True}, "ignore_eos"),
    ({"structured_outputs": {"regex": "a", "choice": ["b"]}}, "structured_outputs"),
])
def test_a_bad_response_format_is_a_400_naming_it(server, model_name, body, param):
    status, err = http(server, "POST", "/v1/chat/completions",
                       {"model": model_name, "messages": QUESTION, "max_tokens": 4, **body})
    assert status == 400, err
    assert err["error"]["param"] == param


def test_a_chunked_body_over_the_limit_is_a_413(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "256", "--max-body-bytes", "2000"])
    try:
        def body():  # no Content-Length: the limit is checked as the bytes arrive
            yield b'{"prompt": "'
            for _ in range(10):
                yield b"x" * 500
            yield b'"}'
        r = httpx.post(s.url + "/v1/completions", content=body(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and "2000 bytes" in r.json()["error"]["message"]
    finally:
        assert s.stop() == 0


def test_echo_with_logprobs_scores_the_prompt_too(server, client, model_name):
    prompt = "The capital of France is Paris."
    r = client.completions.create(model=model_name, prompt=prompt, max_tokens=3, temperature=0, echo=True,
                                  logprobs=2).choices[0]
    _, tok = http(server, "POST", "/tokenize", {"prompt": prompt})
    lp = r.logprobs
    n_prompt = tok["count"]
    assert len(lp.tokens) == n_prompt + 3 and "".join(lp.tokens) == r.text
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing predicts the first token
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert lp.text_offset == [sum(len(t) for t in lp.tokens[:i]) for i in range(len(lp.tokens))]
    # the same through the stream
    pieces = {"tokens": [], "token_logprobs": [], "text_offset": []}
    for chunk in client.completions.create(model=model_name, prompt=prompt, max_tokens=3, temperature=0, echo=True,
                                           logprobs=2, stream=True):
        if chunk.choices and chunk.choices[0].logprobs:
            for key in pieces:
                pieces[key] += getattr(chunk.choices[0].logprobs, key)
    assert pieces == {"tokens": lp.tokens, "token_logprobs": lp.token_logprobs, "text_offset": lp.text_offset}


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome", "Oslo"]},
                                                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                   "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "integer", "minimum": -12,
                                                                                "maximum": 14}},
                                       "required": ["zone"], "additionalProperties": False}}}
ASK_WEATHER = [{"role": "user", "content": "What is the weather in Paris?"}]


def _schema_of(name):
    return {"get_weather": WEATHER, "get_time": TIME}[name]["function"]["parameters"]


def test_a_named_tool_choice_forces_a_call_whose_arguments_follow_its_schema(client, model_name):
    jsonschema = pytest.importorskip("jsonschema")
    choice = {"type": "function", "function": {"name": "get_weather"}}
    r = client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=[WEATHER, TIME],
                                       tool_choice=choice, max_tokens=60, temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "stop" and c.message.content == ""  # OpenAI's finish_reason for a forced function
    (call,) = c.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("chatcmpl-tool-")
    jsonschema.validate(json.loads(call.function.arguments), _schema_of("get_weather"))
    # streamed: the first delta names the call, the arguments follow in pieces and add up
    parts, names, ids, reasons = [], [], set(), []
    for chunk in client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=[WEATHER, TIME],
                                                tool_choice=choice, max_tokens=60, temperature=0, stream=True):
        d = chunk.choices[0].delta
        assert not d.content
        for tc in d.tool_calls or []:
            assert tc.index == 0
            ids.add(tc.id) if tc.id else None
            names.append(tc.function.name) if tc.function.name else None
            parts.append(tc.function.arguments or "")
        if chunk.choices[0].finish_reason:
            reasons.append(chunk.choices[0].finish_reason)
    assert names == ["get_weather"] and len(ids) == 1 and reasons == ["stop"] and len(parts) > 1
    assert "".join(parts) == call.function.arguments


def test_tool_choice_required_gives_calls_to_the_given_tools(client, model_name):
    jsonschema = pytest.importorskip("jsonschema")
    for seed in range(3):
        r = client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=[WEATHER, TIME],
                                           tool_choice="required", max_tokens=120, temperature=1.0, seed=seed)
        c = r.choices[0]
        assert c.finish_reason == "tool_calls" and c.message.tool_calls, c
        for call in c.message.tool_calls:
            jsonschema.validate(json.loads(call.function.arguments), _schema_of(call.function.name))
    one = client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=[WEATHER, TIME],
                                         tool_choice="required", parallel_tool_calls=False, max_tokens=120,
                                         temperature=0)
    assert len(one.choices[0].message.tool_calls) == 1
    streamed = [ch for ch in client.chat.completions.create(model=model_name, messages=ASK_WEATHER,
                                                            tools=[WEATHER, TIME], tool_choice="required",
                                                            parallel_tool_calls=False, max_tokens=120,
                                                            temperature=0, stream=True)]
    calls = [tc for ch in streamed for tc in (ch.choices[0].delta.tool_calls or [])]
    assert [(tc.function.name, tc.function.arguments) for tc in calls] == \
        [(tc.function.name, tc.function.arguments) for tc in one.choices[0].message.tool_calls]
    assert [ch.choices[0].finish_reason for ch in streamed if ch.choices[0].finish_reason] == ["tool_calls"]


def test_tools_in_the_conversation_and_tool_choice_none(client, model_name):
    # an earlier call and its result go back to the template; "none" answers in text
    history = ASK_WEATHER + [
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees, sunny"}]
    r = client.chat.completions.create(model=model_name, messages=history, tools=[WEATHER], tool_choice="none",
                                       max_tokens=8, temperature=0)
    assert r.choices[0].message.content and not r.choices[0].message.tool_calls


def test_forced_calls_with_nested_and_recursive_schemas_and_no_parameters(client, model_name):
    jsonschema = pytest.importorskip("jsonschema")
    # openai.pydantic_function_tool's shape: a nested model under $defs
    place = {"type": "function", "function": {"name": "find", "parameters": {
        "$defs": {"Location": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}},
                               "required": ["city"], "additionalProperties": False}},
        "type": "object", "properties": {"location": {"$ref": "#/$defs/Location"}},
        "required": ["location"], "additionalProperties": False}}}
    anchored = {"type": "function", "function": {"name": "anchored", "parameters": {
        "$id": "https://example.com/anchored.json", "$defs": {"C": {"$anchor": "city", "type": "string", "enum": ["Oslo"]}},
        "type": "object", "properties": {"a": {"$ref": "#city"}, "b": {"$ref": "#/$defs/C"},
                                         "c": {"const": {"$ref": "#/not/a/reference"}}},
        "required": ["a", "b", "c"], "additionalProperties": False}}}
    tree = {"type": "function", "function": {"name": "tree", "parameters": {
        "type": "object", "properties": {"label": {"type": "string", "enum": ["a", "b"]},
                                         "child": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
        "required": ["label", "child"], "additionalProperties": False}}}
    bare = {"type": "function", "function": {"name": "now"}}
    empty = {"type": "function", "function": {"name": "later", "parameters": None}}
    tools = [place, tree, bare, empty, anchored]
    schemas = {"find": place["function"]["parameters"], "tree": tree["function"]["parameters"],
               "anchored": anchored["function"]["parameters"],
               "now": {"type": "object", "properties": {}, "additionalProperties": False},
               "later": {"type": "object", "properties": {}, "additionalProperties": False}}
    for seed in range(4):
        r = client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=tools, tool_choice="required",
                                           max_tokens=150, temperature=1.0, seed=seed)
        assert r.choices[0].finish_reason == "tool_calls", r.choices[0]
        for call in r.choices[0].message.tool_calls:
            args = json.loads(call.function.arguments)
            assert isinstance(args, dict)
            jsonschema.validate(args, schemas[call.function.name])
    for name in ("find", "now", "later", "anchored"):  # (greedy, this small model nests "tree" until max_tokens)
        r = client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=tools, max_tokens=150,
                                           tool_choice={"type": "function", "function": {"name": name}}, temperature=0)
        assert r.choices[0].finish_reason == "stop", (name, r.choices[0])
        args = json.loads(r.choices[0].message.tool_calls[0].function.arguments)
        assert isinstance(args, dict)
        jsonschema.validate(args, schemas[name])


def test_a_named_call_cut_short_is_still_a_call_streamed_or_not(client, model_name):
    choice = {"type": "function", "function": {"name": "get_weather"}}
    whole = client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=[WEATHER], tool_choice=choice,
                                           max_tokens=3, temperature=0)
    c = whole.choices[0]
    assert c.finish_reason == "length" and c.message.tool_calls[0].function.name == "get_weather"
    parts, reasons = [], []
    for chunk in client.chat.completions.create(model=model_name, messages=ASK_WEATHER, tools=[WEATHER],
                                                tool_choice=choice, max_tokens=3, temperature=0, stream=True):
        parts += [tc.function.arguments or "" for tc in chunk.choices[0].delta.tool_calls or []]
        reasons += [chunk.choices[0].finish_reason] if chunk.choices[0].finish_reason else []
    assert "".join(parts) == c.message.tool_calls[0].function.arguments and reasons == ["length"]


@pytest.mark.parametrize("body, param", [
    ({"tools": [WEATHER, WEATHER], "tool_choice": "required"}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "foo"}}}],
      "tool_choice": "required"}, "tools"),  # a schema the grammar cannot take
    ({"tools": [WEATHER], "tool_choice": "required", "include_stop_str_in_output": True}, "include_stop_str_in_output"),
    ({"tools": [WEATHER]}, "tool_choice"),  # "auto" by default: no parser of the model's call format
    ({"tools": [WEATHER], "tool_choice": "auto"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [{"type": "function"}], "tool_choice": "required"}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}], "tool_choice": "required"}, "tools"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
])
def test_bad_tool_requests_are_400s_naming_the_field(server, model_name, body, param):
    status, err = http(server, "POST", "/v1/chat/completions",
                       {"model": model_name, "messages": ASK_WEATHER, "max_tokens": 4, **body})
    assert status == 400 and err["error"]["param"] == param, err


@pytest.fixture(scope="module")
def hermes_client(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "2", "-c", "1024", "--enable-auto-tool-choice",
                       "--tool-call-parser", "hermes"])
    yield openai.OpenAI(base_url=s.api, api_key="unused", max_retries=0, timeout=120)
    assert s.stop() == 0, "".join(s.log)[-2000:]


# what a Qwen2.5 model writes when it calls tools (the regex makes this small model write it)
HERMES_CALLS = (r'I will check\.\n<tool_call>\n\{"name": "get_weather", "arguments": \{"city": "(Paris|Rome)", '
                r'"unit": "celsius"\}\}\n</tool_call>\n<tool_call>\n\{"name": "get_time", "arguments": '
                r'\{"zone": 1\}\}\n</tool_call>')


def test_auto_tool_choice_reads_the_models_own_calls_back(hermes_client):
    c = hermes_client
    name = c.models.list().data[0].id
    ask = dict(model=name, messages=ASK_WEATHER, tools=[WEATHER, TIME], max_tokens=120, temperature=0)
    r = c.chat.completions.create(**ask, extra_body={"structured_outputs": {"regex": HERMES_CALLS}})
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "tool_calls" and m.content == "I will check.\n"
    assert [(t.function.name, json.loads(t.function.arguments)) for t in m.tool_calls] == \
        [("get_weather", {"city": "Paris", "unit": "celsius"}), ("get_time", {"zone": 1})]
    assert len({t.id for t in m.tool_calls}) == 2
    # streamed: the same content, then each call whole as its block closes
    content, calls, reasons = "", [], []
    for chunk in c.chat.completions.create(**ask, stream=True, extra_body={"structured_outputs": {"regex": HERMES_CALLS}}):
        d = chunk.choices[0].delta
        content += d.content or ""
        calls += [(t.index, t.function.name, t.function.arguments) for t in d.tool_calls or []]
        reasons += [chunk.choices[0].finish_reason] if chunk.choices[0].finish_reason else []
    assert "<tool_call>" not in content and content == m.content and reasons == ["tool_calls"]
    assert calls == [(k, t.function.name, t.function.arguments) for k, t in enumerate(m.tool_calls)]
    # an answer without a call is plain text
    plain = c.chat.completions.create(**{**ask, "max_tokens": 8})
    assert plain.choices[0].message.content and not plain.choices[0].message.tool_calls


def test_enable_auto_tool_choice_needs_a_parser_as_in_vllm():
    from hearthlm.server.cli import parse_args
    assert parse_args(["--enable-auto-tool-choice", "--tool-call-parser", "hermes"]).tool_call_parser == "hermes"
    assert not parse_args(["--tool-call-parser", "hermes"]).enable_auto_tool_choice  # "auto" stays a 400
    with pytest.raises(SystemExit):
        parse_args(["--enable-auto-tool-choice"])


@pytest.mark.parametrize("text, content, calls", [
    ('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>', None, [("f", {"a": 1})]),
    ('Sure.<tool_call>{"name": "f"}</tool_call>\n\n<tool_call>{"name": "g", "arguments": {}}</tool_call>',
     "Sure.", [("f", {}), ("g", {})]),
    ('<tool_call>{"name": "f", "arguments": {"a": "<tool_call>"}}', None, [("f", {"a": "<tool_call>"})]),  # unclosed
    ("a <tool_ b <tool_call>not json</tool_call>", "a <tool_ b <tool_call>not json</tool_call>", []),
    ('<tool_call>{"arguments": {}}</tool_call>', '<tool_call>{"arguments": {}}</tool_call>', []),  # no name
    ("just text", "just text", []),
    # the whitespace right after a call goes, whole or streamed; later text stays as written
    ('<tool_call>{"name": "f"}</tool_call>\nDone.\n\nBye \n', "Done.\n\nBye \n", [("f", {})]),
    ('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>', None, [("f", {"a": 1})]),  # JSON text
])
def test_the_hermes_parser_gives_the_same_whole_or_streamed_in_any_pieces(text, content, calls):
    from hearthlm.server.tool_parser import HermesStream
    for step in (len(text), 1, 2, 5):  # whole, then in pieces
        s = HermesStream()
        deltas = [d for i in range(0, len(text), step) for d in s.feed(text[i:i + step])] + s.finish()
        assert ("".join(d.get("content", "") for d in deltas) or None) == content
        streamed = [t for d in deltas for t in d.get("tool_calls", [])]
        assert [(t["index"], t["function"]["name"], json.loads(t["function"]["arguments"])) for t in streamed] == \
            [(k, n, a) for k, (n, a) in enumerate(calls)]
