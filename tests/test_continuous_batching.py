"""The engine (LLMEngine, and LLM.generate on it): requests batched together
give exactly what they give alone (greedy ids and logits bit for bit, seeded
samples), on every kernel set and thread count and whatever the step
boundaries (chunked prefill); the prefix cache hands a second request the
blocks of a shared prefix and changes nothing in its output; a pool too
small for everyone preempts and still finishes every request as alone; an
abort gives its blocks back at once. Tiny random models (written with the
gguf package) keep this fast; the real model repeats the main points."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.engine_helpers import counts_during
from helpers.gguf_files import write_tiny_model

from hearthlm import LLM, HearthError, LLMEngine, SamplingParams

B = 16  # tokens per KV block
GREEDY = dict(temperature=0.0, ignore_eos=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("batching")
    return {arch: str(write_tiny_model(d / f"{arch}.gguf", arch=arch, weight_type="q8_0", tied=(arch == "qwen2"),
                                       n_ctx=1024, seed=4))
            for arch in ("llama", "qwen2")}


def prompts_of_lengths(lengths, seed=0, vocab=256):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, n).tolist() for n in lengths]


def engine(path, **kw):
    kw.setdefault("n_threads", 2)
    kw.setdefault("kv_type", "f32")
    e = LLMEngine(path, **kw)
    e._engine.set_keep_logits(True)
    return e


def run_with_logits(e: LLMEngine, requests):
    """As run(), with each completion's rows of logits (from the core engine)."""
    for rid, prompt, params in requests:
        e.add_request(rid, prompt, params)
    ids = {rid: {} for rid, _, _ in requests}
    logits = {rid: {} for rid, _, _ in requests}
    finished = set()
    while e.has_unfinished_requests():
        for o in e._engine.step():
            for c in o.outputs:
                ids[o.request_id].setdefault(c.index, []).extend(c.token_ids)
                logits[o.request_id].setdefault(c.index, []).append(c.logits)
            if o.finished:
                finished.add(o.request_id)
                e._prompts.pop(o.request_id, None)
    assert finished == set(ids)
    return ids, {rid: {i: np.concatenate(rows) for i, rows in per.items()} for rid, per in logits.items()}


def assert_pool_back(e: LLMEngine):
    s = e.stats()
    assert not e.has_unfinished_requests()
    assert s["kv_blocks_used"] == -(-e._engine.n_past // B), s  # only eval's own tokens may hold blocks


# ---------------------------------------------------------------------------
# batch invariance
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_greedy_alone_and_among_15_others_is_bit_identical_on_every_kernel_set(tiny, arch, kernel_set):
    target = prompts_of_lengths([37], seed=1)[0]
    others = prompts_of_lengths([5, 90, 13, 200, 64, 1, 33, 150, 8, 71, 16, 17, 120, 3, 45], seed=2)
    params = SamplingParams(max_tokens=24, **GREEDY)
    alone_ids, alone_logits = run_with_logits(engine(tiny[arch]), [("t", target, params)])
    e = engine(tiny[arch], max_num_seqs=16, max_num_batched_tokens=256)
    # the others come first, with other lengths and budgets: the target's rows
    # share every step with prefill chunks and decode rows of other sequences
    reqs = [(f"o{i}", p, SamplingParams(max_tokens=10 + 3 * i, **GREEDY)) for i, p in enumerate(others)]
    ids, logits = run_with_logits(e, reqs[:7] + [("t", target, params)] + reqs[7:])
    assert ids["t"][0] == alone_ids["t"][0]
    assert np.array_equal(logits["t"][0], alone_logits["t"][0])  # bit for bit
    assert_pool_back(e)


def test_batch_invariance_holds_for_one_and_two_threads(tiny):
    target = prompts_of_lengths([50], seed=3)[0]
    others = prompts_of_lengths([7, 120, 30], seed=4)
    params = SamplingParams(max_tokens=16, **GREEDY)
    _, alone = run_with_logits(engine(tiny["llama"], n_threads=1), [("t", target, params)])
    reqs = [(f"o{i}", p, params) for i, p in enumerate(others)] + [("t", target, params)]
    _, batched = run_with_logits(engine(tiny["llama"], n_threads=2), reqs)
    assert np.array_equal(alone["t"][0], batched["t"][0])


def test_chunked_prefill_gives_the_same_logits_as_one_pass(tiny):
    prompt = prompts_of_lengths([300], seed=5)[0]
    params = SamplingParams(max_tokens=12, **GREEDY)
    whole_ids, whole = run_with_logits(engine(tiny["qwen2"], max_num_batched_tokens=512), [("a", prompt, params)])
    for budget in (7, 32, 100):
        e = engine(tiny["qwen2"], max_num_batched_tokens=budget)
        ids, logits = run_with_logits(e, [("a", prompt, params)])
        assert ids["a"][0] == whole_ids["a"][0] and np.array_equal(logits["a"][0], whole["a"][0]), budget


def test_seeded_sampling_is_the_same_alone_and_in_a_batch(tiny):
    target = prompts_of_lengths([20], seed=6)[0]
    params = SamplingParams(temperature=1.0, top_p=0.9, max_tokens=30, seed=77, ignore_eos=True, n=3)
    alone, _ = run_with_logits(engine(tiny["llama"]), [("t", target, params)])
    others = [(f"o{i}", p, SamplingParams(temperature=0.8, max_tokens=25, seed=i, ignore_eos=True))
              for i, p in enumerate(prompts_of_lengths([3, 60, 11, 200], seed=7))]
    batched, _ = run_with_logits(engine(tiny["llama"]), others[:2] + [("t", target, params)] + others[2:])
    assert batched["t"] == alone["t"]
    assert len({tuple(v) for v in alone["t"].values()}) > 1  # the n completions differ from each other


def test_generate_of_many_prompts_equals_each_prompt_alone(tiny):
    llm = LLM(tiny["llama"], n_threads=2, kv_type="f32")
    prompts = prompts_of_lengths([10, 200, 3, 64, 31], seed=8)
    params = SamplingParams(max_tokens=20, **GREEDY)
    together = llm.generate(prompts, params)
    alone = [llm.generate([p], params)[0] for p in prompts]
    assert [o.token_ids for o in together] == [o.token_ids for o in alone]
    assert [o.prompt_token_ids for o in together] == prompts  # in the order given


# ---------------------------------------------------------------------------
# the prefix cache
# ---------------------------------------------------------------------------

def test_a_shared_500_token_prefix_is_computed_once(tiny):
    system = prompts_of_lengths([500], seed=9)[0]
    a, b = (system + tail for tail in prompts_of_lengths([20, 35], seed=10))
    params = SamplingParams(max_tokens=16, **GREEDY)
    e = engine(tiny["llama"])
    first, first_logits = run_with_logits(e, [("a", a, params)])
    e.add_request("b", b, params)
    outs = []
    while e.has_unfinished_requests():
        outs += e.step()
    assert outs[-1].num_cached_tokens >= (500 // B) * B  # every full block of the shared prefix
    s = e.stats()
    assert s["prefix_cache_hits"] >= (500 // B) * B and s["prefix_cache_queries"] == len(a) + len(b)
    # the same output as without the cache, logits bit for bit
    nocache = engine(tiny["llama"], enable_prefix_caching=False)
    want, want_logits = run_with_logits(nocache, [("b", b, params)])
    again, again_logits = run_with_logits(e, [("b2", b, params)])
    assert again["b2"][0] == want["b"][0] and np.array_equal(again_logits["b2"][0], want_logits["b"][0])
    assert nocache.stats()["prefix_cache_hits"] == 0
    assert_pool_back(e)


def test_a_request_repeated_whole_reuses_all_but_its_last_block(tiny):
    prompt = prompts_of_lengths([4 * B + 5], seed=11)[0]
    llm = LLM(tiny["qwen2"], n_threads=2, kv_type="f32")
    p = SamplingParams(max_tokens=8, **GREEDY)
    one = llm.generate([prompt], p)[0]
    two = llm.generate([prompt], p)[0]
    assert one.num_cached_tokens == 0 and two.num_cached_tokens == 4 * B
    assert two.token_ids == one.token_ids


def test_n_completions_fork_the_prompt_instead_of_recomputing_it(tiny):
    prompt = prompts_of_lengths([10 * B], seed=12)[0]
    llm = LLM(tiny["llama"], n_threads=2, kv_type="f32")
    out = llm.generate([prompt], SamplingParams(n=4, temperature=1.0, max_tokens=8, seed=3, ignore_eos=True))[0]
    block_bytes = llm.llm_engine._engine.kv_block_bytes
    # the prompt's 10 blocks once, plus one block of its own per completion
    assert out.metrics["kv_peak_bytes"] <= (10 + 4) * block_bytes
    assert llm.llm_engine.stats()["prompt_tokens"] == len(prompt)  # computed once, not four times


# ---------------------------------------------------------------------------
# a pool too small for everyone: preemption
# ---------------------------------------------------------------------------

def test_a_pool_too_small_for_all_requests_preempts_and_still_gives_each_its_own_output(tiny):
    prompts = prompts_of_lengths([40, 70, 25, 90, 55, 33], seed=13)
    params = [SamplingParams(max_tokens=60, **GREEDY) if i % 2 else
              SamplingParams(temperature=0.9, max_tokens=60, seed=i, ignore_eos=True) for i in range(len(prompts))]
    alone = {}
    for i, (p, sp) in enumerate(zip(prompts, params)):
        ids, logits = run_with_logits(engine(tiny["llama"]), [(str(i), p, sp)])
        alone[str(i)] = (ids[str(i)][0], logits[str(i)][0])
    # room for about two requests at a time: they must take turns
    small = engine(tiny["llama"], n_ctx=160, kv_cache_tokens=320, max_num_seqs=6)
    ids, logits = run_with_logits(small, [(str(i), p, sp) for i, (p, sp) in enumerate(zip(prompts, params))])
    assert small.stats()["num_preemptions"] > 0
    for rid, (want_ids, want_logits) in alone.items():
        assert ids[rid][0] == want_ids, rid
        assert np.array_equal(logits[rid][0], want_logits), rid
    assert_pool_back(small)


def test_beams_survive_preemption_with_the_same_result(tiny):
    prompts = prompts_of_lengths([30, 50, 45], seed=14)
    beam = SamplingParams(num_beams=3, max_tokens=20, ignore_eos=True)
    llm_alone = LLM(tiny["qwen2"], n_threads=2, kv_type="f32")
    want = llm_alone.generate([prompts[0]], beam)[0]
    small = LLM(tiny["qwen2"], n_threads=2, kv_type="f32", n_ctx=96, kv_cache_tokens=3 * 96 + 48)
    outs = small.generate(prompts, [beam, SamplingParams(max_tokens=40, **GREEDY),
                                    SamplingParams(max_tokens=40, **GREEDY)])
    assert outs[0].token_ids == want.token_ids and outs[0].outputs[0].beam_score == want.outputs[0].beam_score
    assert_pool_back(small.llm_engine)


# ---------------------------------------------------------------------------
# abort, and blocks back after every path
# ---------------------------------------------------------------------------

def test_abort_gives_the_blocks_back_at_once(tiny):
    e = engine(tiny["llama"])
    e.add_request("a", prompts_of_lengths([100], seed=15)[0], SamplingParams(max_tokens=50, **GREEDY))
    e.add_request("b", prompts_of_lengths([60], seed=16)[0], SamplingParams(n=3, temperature=1.0, max_tokens=50))
    e.step()
    e.step()
    s = e.stats()
    assert s["num_requests_running"] == 2 and s["kv_blocks_used"] > 0
    e.abort_request("a")
    assert e.stats()["num_requests_running"] == 1
    e.abort_request(["b"])
    assert_pool_back(e)
    assert e.step() == []


def test_a_failed_add_queues_nothing_and_holds_no_block(tiny):
    llm = LLM(tiny["llama"], n_threads=2, n_ctx=64)
    good = prompts_of_lengths([10], seed=17)[0]
    with pytest.raises(HearthError, match="does not fit in the context of 64"):
        llm.generate([good, good * 10], SamplingParams(max_tokens=4))  # the second is too long
    assert_pool_back(llm.llm_engine)
    with pytest.raises(HearthError, match="out of range"):
        llm.generate([good, [999999]], SamplingParams(max_tokens=4))
    assert_pool_back(llm.llm_engine)


def test_a_closed_stream_aborts_its_request(tiny):
    llm = LLM(tiny["llama"], n_threads=2)
    gen = llm.generate(prompts_of_lengths([40], seed=18)[0], SamplingParams(max_tokens=100, **GREEDY), stream=True)
    # queued at the call, closed before its first step: the request is aborted
    gen.close()
    assert_pool_back(llm.llm_engine)


def test_an_error_inside_generate_aborts_every_request_it_added(tiny):
    llm = LLM(tiny["llama"], n_threads=2)
    prompts = prompts_of_lengths([30, 40, 50], seed=19)

    class Boom(Exception):
        pass

    steps = [0]
    real_step = llm.llm_engine.step

    def failing_step():
        steps[0] += 1
        if steps[0] == 3:
            raise Boom()
        return real_step()

    llm.llm_engine.step = failing_step
    with pytest.raises(Boom):
        llm.generate(prompts, SamplingParams(max_tokens=30, **GREEDY))
    assert_pool_back(llm.llm_engine)


# ---------------------------------------------------------------------------
# LLMEngine's surface
# ---------------------------------------------------------------------------

def test_step_returns_each_requests_news_since_the_last_step(tiny):
    e = LLMEngine(tiny["qwen2"], n_threads=2)
    prompt = prompts_of_lengths([20], seed=20)[0]
    e.add_request("x", prompt, SamplingParams(max_tokens=5, **GREEDY))
    with pytest.raises(HearthError, match="already running"):
        e.add_request("x", prompt, SamplingParams(max_tokens=5))
    news = []
    while e.has_unfinished_requests():
        news += e.step()
    assert [len(o.outputs[0].token_ids) for o in news] == [1] * 5  # one new token per step
    assert [o.finished for o in news] == [False] * 4 + [True]
    assert news[-1].outputs[0].finish_reason == "length" and news[-1].prompt_token_ids == prompt
    s = e.stats()
    assert s["generation_tokens"] == 5 and s["prompt_tokens"] == 20
    assert (s["num_requests_running"], s["num_requests_waiting"], s["kv_blocks_used"]) == (0, 0, 0)


def test_max_num_seqs_bounds_the_running_requests(tiny):
    e = LLMEngine(tiny["llama"], n_threads=2, max_num_seqs=2)
    for i, p in enumerate(prompts_of_lengths([5, 6, 7, 8], seed=21)):
        e.add_request(str(i), p, SamplingParams(max_tokens=3, **GREEDY))
    e.step()
    s = e.stats()
    assert (s["num_requests_running"], s["num_requests_waiting"]) == (2, 2)
    while e.has_unfinished_requests():
        e.step()


def test_step_releases_the_gil(tiny, tmp_path):
    path = write_tiny_model(tmp_path / "gil.gguf", n_ctx=2048, n_embd=256, n_ff=512, weight_type="q8_0")
    e = LLMEngine(str(path), n_threads=1, max_num_batched_tokens=1500)
    e.add_request("a", list(np.random.default_rng(0).integers(0, 256, 1500)), SamplingParams(max_tokens=1))
    during = counts_during(e.step)
    assert during > 1000
    while e.has_unfinished_requests():
        e.step()


@pytest.mark.parametrize("kwargs, name", [
    (dict(max_num_seqs=0), "max_num_seqs"), (dict(max_num_batched_tokens=0), "max_num_batched_tokens"),
    (dict(kv_cache_tokens=8, n_ctx=64), "kv_cache_tokens"), (dict(n_ctx=-1), "n_ctx"),
])
def test_bad_engine_parameters_are_value_errors_naming_them(tiny, kwargs, name):
    with pytest.raises(ValueError, match=name):
        LLMEngine(tiny["llama"], **kwargs)


def test_a_request_that_can_never_fit_the_pool_is_refused_up_front(tiny):
    llm = LLM(tiny["llama"], n_ctx=256, kv_cache_tokens=256)
    with pytest.raises(HearthError, match=r"4 sequences of up to 256 tokens need 64 KV blocks, but the pool has 16") as e:
        llm.generate([[1, 2, 3]], SamplingParams(n=4, max_tokens=None))
    assert e.value.param == "n"
    assert_pool_back(llm.llm_engine)


def test_a_request_that_eval_leaves_no_room_for_fails_instead_of_waiting_forever(tiny):
    llm = LLM(tiny["llama"], n_threads=2, n_ctx=128, kv_cache_tokens=128)
    llm.eval(prompts_of_lengths([120], seed=22)[0])  # eval's own tokens hold 8 of the 8 blocks
    with pytest.raises(HearthError, match="cannot start: the KV cache has 0 free blocks of 8"):
        llm.generate([[1, 2, 3]], SamplingParams(max_tokens=4))
    llm.reset()
    assert len(llm.generate([[1, 2, 3]], SamplingParams(max_tokens=4, **GREEDY))[0].token_ids) == 4
