"""One LLM (or LLMEngine) used from several threads at once, on the real
SmolLM2 file: generate() calls, streams and eval() from different threads
run one step at a time and each gets exactly what it gets alone (before the
engine's lock, two threads stepping at once crashed the process)."""
from __future__ import annotations

import threading

import pytest

from hearthlm import LLM, LLMEngine, SamplingParams

GREEDY = SamplingParams(temperature=0.0, max_tokens=12, ignore_eos=True)
PROMPTS = [f"Question {i}: what is the capital of country number {i}?" for i in range(6)]


@pytest.fixture(scope="module")
def llm(smollm2_gguf):
    return LLM(model=str(smollm2_gguf), n_threads=2, n_ctx=512)


def run_threads(targets):
    errors = []

    def guard(fn):
        try:
            fn()
        except BaseException as e:  # reported below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=guard, args=(fn,)) for fn in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread is still waiting on the engine"
    assert not errors, errors


def texts(outputs):
    return [o.outputs[0].text for o in outputs]


def test_generate_from_several_threads_gives_what_each_gets_alone(llm):
    alone = {i: texts(llm.generate(PROMPTS[i:i + 2], GREEDY, use_tqdm=False)) for i in range(0, 6, 2)}
    together = {}

    def call(i):
        return lambda: together.__setitem__(i, texts(llm.generate(PROMPTS[i:i + 2], GREEDY, use_tqdm=False)))

    run_threads([call(i) for i in range(0, 6, 2)])
    assert together == alone
    assert not llm.llm_engine.has_unfinished_requests()


def test_streams_generate_and_eval_on_different_threads(llm):
    want_stream = texts(llm.generate([PROMPTS[0]], GREEDY, use_tqdm=False))[0]
    want_batch = texts(llm.generate(PROMPTS[1:4], GREEDY, use_tqdm=False))
    llm.reset()
    ids = llm.tokenize(PROMPTS[4])
    want_logits = llm.eval(ids, all_logits=False)
    llm.reset()
    got = {}

    def stream():
        got["stream"] = "".join(llm.generate(PROMPTS[0], GREEDY, stream=True))

    def batch():
        got["batch"] = texts(llm.generate(PROMPTS[1:4], GREEDY, use_tqdm=False))

    def evaluate():
        got["logits"] = llm.eval(ids, all_logits=False)
        llm.reset()

    run_threads([stream, batch, evaluate])
    assert got["stream"] == want_stream and got["batch"] == want_batch
    assert (got["logits"] == want_logits).all()  # batch invariance: bit for bit


def test_an_engine_stepped_on_one_thread_while_another_adds_and_aborts(smollm2_gguf):
    engine = LLMEngine(str(smollm2_gguf), n_threads=2, n_ctx=256, max_num_seqs=4)
    params = SamplingParams(temperature=0.0, max_tokens=8, ignore_eos=True)
    # the requests aborted right after they are added cannot finish first, however the threads interleave
    long = SamplingParams(temperature=0.0, max_tokens=200, ignore_eos=True)
    stop = threading.Event()
    finished = {}

    def stepper():
        while not stop.is_set() or engine.has_unfinished_requests():
            for out in engine.step() if engine.has_unfinished_requests() else []:
                if out.finished:
                    finished[out.request_id] = out

    def adder():
        try:
            for i in range(40):
                engine.add_request(f"r{i}", PROMPTS[i % len(PROMPTS)], long if i % 3 == 2 else params)
                if i % 3 == 2:
                    engine.abort_request(f"r{i}")
        finally:
            stop.set()

    run_threads([stepper, adder])
    assert sorted(finished) == sorted(f"r{i}" for i in range(40) if i % 3 != 2)
    assert all(o.outputs[0].finish_reason == "length" for o in finished.values())
    assert engine.stats()["kv_blocks_used"] == 0
