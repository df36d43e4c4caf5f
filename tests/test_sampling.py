"""The sampler: each logits processor equals Hugging Face's on random logits
and edge values, the draw follows the processed distribution (chi-square),
seeds reproduce, and bad parameters are ValueErrors naming the parameter."""
from __future__ import annotations

import math

import numpy as np
import pytest

from hearthlm import HearthError, SamplingParams, _core

torch = pytest.importorskip("torch")
lp = pytest.importorskip("transformers.generation.logits_process")

V = 1000


def rows(seed, n=20):
    """Random logits without near-ties (transformers breaks ties in an
    unspecified order), plus rows with negative and positive values, a spike
    and a flat stretch."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.permutation(V).astype(np.float32) * np.float32(0.013)  # distinct values: no ties
        x = (x - x.mean()) * np.float32(rng.uniform(0.2, 3.0))
        if i % 5 == 1:
            x[rng.integers(V)] = 40.0  # one dominant token
        out.append(x.astype(np.float32))
    return out


def sampler(**params):
    """The C++ sampler with these parameters (the rest at their defaults)."""
    p = _core.SamplingParams()
    for k, v in params.items():
        setattr(p, k, v)
    return _core.testing.Sampler(p)


def hf(processor, x, input_ids=None):
    ids = torch.tensor([input_ids or [0]])
    return processor(ids, torch.tensor(x[None, :].copy()))[0].numpy()


def same(got, want):
    """Equal kept sets, and equal values where kept (float rounding)."""
    got_kept, want_kept = np.isfinite(got), np.isfinite(want)
    assert np.array_equal(got_kept, want_kept), (np.nonzero(got_kept != want_kept)[0][:10])
    np.testing.assert_allclose(got[got_kept], want[want_kept], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("penalty", [1.0, 1.3, 0.7, 2.5])
def test_repetition_penalty_equals_transformers(penalty):
    rng = np.random.default_rng(1)
    for x in rows(1):
        history = rng.integers(0, V, 30).tolist() + [5, 5, 5]  # repeats count once
        same(_core.testing.apply_repetition_penalty(x, history, penalty),
             hf(lp.RepetitionPenaltyLogitsProcessor(penalty=penalty), x, history))


@pytest.mark.parametrize("t", [0.3, 0.7, 1.0, 1.5])
def test_temperature_equals_transformers(t):
    for x in rows(2):
        same(_core.testing.apply_temperature(x, t), hf(lp.TemperatureLogitsWarper(t), x))


@pytest.mark.parametrize("k", [1, 2, 5, 40, V - 1, V, V + 5])
def test_top_k_equals_transformers(k):
    for x in rows(3):
        same(_core.testing.apply_top_k(x, k), hf(lp.TopKLogitsWarper(top_k=k), x))


def test_top_k_keeps_every_token_tied_with_the_kth():
    x = np.array([3, 1, 2, 2, 2, 0], np.float32)
    same(_core.testing.apply_top_k(x, 2), hf(lp.TopKLogitsWarper(top_k=2), x))
    assert np.isfinite(_core.testing.apply_top_k(x, 2)).sum() == 4


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.95, 0.999, 1.0])
def test_top_p_equals_transformers(p):
    for x in rows(4):
        same(_core.testing.apply_top_p(x, p), hf(lp.TopPLogitsWarper(top_p=p), x))


def top_p_reference(x, p):
    """Top-p by the definition on a whole vocabulary: sort every token (most
    likely first, ties by id), keep until the tokens before hold p (a
    float32, as SamplingParams holds it)."""
    p = float(np.float32(p))
    w = np.exp(x.astype(np.float64) - float(x.max()))
    z = np.cumsum(w)[-1]  # in id order, one add at a time, as the C++ sums
    order = np.lexsort((np.arange(len(x)), -x))
    before = np.concatenate([[0.0], np.cumsum(w[order] / z)[:-1]])
    cut = np.nonzero((before >= p) & (np.arange(len(x)) > 0))[0]
    keep = cut[0] if len(cut) else len(x)
    out = np.full_like(x, -np.inf)
    out[order[:keep]] = x[order[:keep]]
    return out


@pytest.mark.parametrize("vocab", [49152, 151936])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.95, 0.999])
def test_top_p_on_a_whole_vocabulary_equals_the_definition(vocab, p):
    """apply_top_p looks only at the tokens near the max that can be kept (a
    bound on the mass of the rest) and sorts only those: the kept set must be
    the definition's, with model-like rows, flat ones and many ties."""
    rng = np.random.default_rng(vocab + int(p * 1000))
    for i in range(6):
        x = rng.normal(0.0, rng.uniform(0.5, 3.0), vocab).astype(np.float32)
        if i % 3 == 1:
            x[rng.integers(vocab, size=5)] += 12.0  # a few likely tokens
        if i % 3 == 2:
            x = np.round(x * 4) / 4  # quarter-logit steps: thousands of ties
        same(_core.testing.apply_top_p(x, p), top_p_reference(x, p))


@pytest.mark.parametrize("m", [0.0, 0.01, 0.05, 0.2, 0.9, 1.0])
def test_min_p_equals_transformers(m):
    for x in rows(5):
        want = hf(lp.MinPLogitsWarper(min_p=m), x) if m > 0 else x
        same(_core.testing.apply_min_p(x, m), want)


def test_processors_after_top_k_see_only_what_is_left():
    """The chain as Hugging Face runs it: temperature -> top-k -> top-p -> min-p."""
    for x in rows(6):
        ours = _core.testing.apply_min_p(_core.testing.apply_top_p(_core.testing.apply_top_k(_core.testing.apply_temperature(x, 0.8), 50), 0.9), 0.05)
        theirs = x
        for proc in [lp.TemperatureLogitsWarper(0.8), lp.TopKLogitsWarper(50), lp.TopPLogitsWarper(0.9),
                     lp.MinPLogitsWarper(0.05)]:
            theirs = hf(proc, theirs)
        same(ours, theirs)


def test_allowed_tokens_and_logit_bias_come_before_the_chain():
    x = rows(7, 1)[0]
    allowed = _core.testing.apply_allowed_tokens(x, [5, 900, 5, V + 3])  # repeats and ids past the row are harmless
    assert np.array_equal(np.nonzero(np.isfinite(allowed))[0], [5, 900]) and allowed[900] == x[900]
    assert np.array_equal(_core.testing.apply_allowed_tokens(x, []), x)  # empty: every token
    biased = _core.testing.apply_logit_bias(x, {3: 2.5, 10: -100.0, V + 1: 1.0})
    want = x.copy()
    want[3] += np.float32(2.5)
    want[10] -= np.float32(100.0)
    assert np.array_equal(biased, want)
    # a bias of 100 makes a token the greedy choice, before the penalties
    top = int(np.argmin(x))
    assert sampler(temperature=0.0, logit_bias={top: 100.0}).sample(x) == top
    assert sampler(temperature=0.0, logit_bias={top: 100.0}, repetition_penalty=1e6).sample(x, prompt=[top]) != top
    # sampling draws only allowed tokens (a flat row: each a third of the time)
    s = sampler(temperature=1.5, seed=4, allowed_token_ids=[1, 2, 3])
    assert {s.sample(np.zeros(V, np.float32)) for _ in range(200)} == {1, 2, 3}


def test_presence_and_frequency_penalties_follow_openai():
    x = np.zeros(10, np.float32)
    out = _core.testing.apply_presence_frequency(x, [3, 3, 7], 0.5, 0.25)
    want = np.zeros(10, np.float32)
    want[3] = -(2 * 0.25 + 0.5)
    want[7] = -(1 * 0.25 + 0.5)
    np.testing.assert_array_equal(out, want)


# ---------------------------------------------------------------------------
# the draw
# ---------------------------------------------------------------------------

def processed_probs(x, params):
    y = x.astype(np.float64) / params["temperature"]
    y = _core.testing.apply_min_p(_core.testing.apply_top_p(_core.testing.apply_top_k(_core.testing.apply_temperature(x, params["temperature"]),
                                                               params["top_k"]), params["top_p"]), params["min_p"])
    y = np.where(np.isfinite(y), y, -np.inf).astype(np.float64)
    p = np.exp(y - y.max())
    return p / p.sum()


@pytest.mark.parametrize("params", [
    dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.0),
    dict(temperature=0.7, top_k=20, top_p=1.0, min_p=0.0),
    dict(temperature=1.3, top_k=0, top_p=0.8, min_p=0.0),
    dict(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05),
], ids=["plain", "top-k", "top-p", "cli-defaults"])
def test_draws_follow_the_processed_distribution(params):
    """Chi-square goodness of fit over 40,000 seeded draws (the bins with an
    expected count below 5 pooled): p > 1e-3."""
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    x = (rng.normal(0, 2, 60)).astype(np.float32)
    probs = processed_probs(x, params)
    n = 40_000
    draws = np.array(sampler(**params, seed=123).sample_many(x, n))
    assert probs[draws].min() > 0, "drew a token the processors removed"
    counts = np.bincount(draws, minlength=len(x)).astype(np.float64)
    expected = probs * n
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    chi2, pvalue = scipy_stats.chisquare(obs, exp)
    assert pvalue > 1e-3, (chi2, pvalue)


@pytest.mark.parametrize("k", [1, 40, 999])
def test_after_top_k_the_chain_on_the_tokens_left_draws_as_on_the_whole_row(k):
    """The sampler runs top-p, min-p and the draw on the tokens top-k left,
    gathered in id order: the same draws as the whole row with the others
    removed beforehand (temperature keeps the order, so removing before it
    keeps the same tokens), tied logits among them."""
    for i, x in enumerate(rows(9, n=6)):
        x = x.copy()
        x[::7] = x[3]  # ties, some of them across the k-th value
        kth = np.sort(x)[::-1][k - 1]
        removed = np.where(x >= kth, x, np.float32(-np.inf)).astype(np.float32)
        for params in (dict(temperature=0.9, top_p=0.9, min_p=0.02), dict(temperature=1.2)):
            got = sampler(**params, top_k=k, seed=i).sample_many(x, 300)
            want = sampler(**params, top_k=0, seed=i).sample_many(removed, 300)
            assert got == want


@pytest.mark.parametrize("k", [0, 40])
def test_a_row_with_every_token_removed_draws_minus_one_not_a_crash(k):
    """(The engine never hands the sampler such a row: a grammar that allows
    nothing is an error before it, and min_tokens is checked against the
    allowed tokens. The sampler still answers -1 for one, with top-k too.)"""
    x = np.full(100, -np.inf, dtype=np.float32)
    assert sampler(top_k=k, seed=1).sample_many(x, 3) == [-1, -1, -1]


def test_same_seed_same_draws_and_another_seed_other_draws():
    x = np.random.default_rng(0).normal(0, 1, 500).astype(np.float32)
    a = sampler(seed=42).sample_many(x, 200)
    b = sampler(seed=42).sample_many(x, 200)
    c = sampler(seed=43).sample_many(x, 200)
    assert a == b and a != c


def test_temperature_zero_is_greedy_after_the_penalties():
    x = np.array([1.0, 5.0, 4.9, -2.0], np.float32)
    assert sampler(temperature=0.0).sample(x) == 1
    # repetition penalty 2 halves token 1's logit: 2.5 < 4.9
    assert sampler(temperature=0.0, repetition_penalty=2.0).sample(x, [1], []) == 2
    # ties: the first largest, as torch.argmax
    assert sampler(temperature=0.0).sample(np.array([0, 3, 3], np.float32)) == 1


# ---------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    (dict(temperature=-0.1), r"temperature must be >= 0"),
    (dict(top_p=0.0), r"top_p must be in \(0, 1\]"),
    (dict(top_p=1.5), r"top_p must be in \(0, 1\]"),
    (dict(top_k=-2), r"top_k must be an integer >= -1"),
    (dict(min_p=1.2), r"min_p must be in \[0, 1\]"),
    (dict(repetition_penalty=0.0), r"repetition_penalty must be > 0"),
    (dict(repetition_penalty=-1.0), r"repetition_penalty must be > 0"),
    (dict(presence_penalty=3.0), r"presence_penalty must be in \[-2, 2\]"),
    (dict(max_tokens=0), r"max_tokens must be an integer >= 1"),
    (dict(max_new_tokens=-5), r"max_tokens must be an integer >= 1"),
    (dict(n=0), r"n must be an integer >= 1"),
    (dict(num_beams=0), r"num_beams must be an integer >= 1"),
    (dict(logprobs=-1), r"logprobs must be an integer in \[0, 20\]"),
    (dict(logprobs=21), r"logprobs must be an integer in \[0, 20\]"),
    (dict(stop=""), r"stop cannot contain an empty string"),
    (dict(stop=5), r"stop must be a string or a list of strings"),
    (dict(seed=-1), r"seed must be"),
    (dict(stop=[1]), r"stop must be a string or a list of strings"),
    (dict(do_sample=True, temperature=0.0), r"do_sample=True needs temperature > 0"),
    (dict(num_beams=2, do_sample=True), r"beam sampling"),
    (dict(num_beams=2, n=3), r"n must be <= num_beams"),
    (dict(early_stopping="sometimes"), r"early_stopping must be True, False or 'never'"),
])
def test_bad_parameters_raise_value_error_naming_them(kwargs, words):
    with pytest.raises(ValueError, match=words):
        SamplingParams(**kwargs)


@pytest.mark.parametrize("kwargs, param", [
    (dict(temperature=-0.1), "temperature"), (dict(top_p=0.0), "top_p"), (dict(top_k=-2), "top_k"),
    (dict(min_p=1.2), "min_p"), (dict(repetition_penalty=0.0), "repetition_penalty"),
    (dict(presence_penalty=3.0), "presence_penalty"), (dict(frequency_penalty=-3.0), "frequency_penalty"),
    (dict(n=0), "n"), (dict(num_beams=0), "num_beams"),
    # and the Python side's own checks
    (dict(max_tokens=0), "max_tokens"), (dict(n="2"), "n"), (dict(seed=-1), "seed"), (dict(logprobs=-1), "logprobs"),
    (dict(prompt_logprobs=99), "prompt_logprobs"), (dict(stop=5), "stop"), (dict(stop="\ud800"), "stop"),
    (dict(stop=[""]), "stop"), (dict(stop_token_ids=3), "stop_token_ids"), (dict(ignore_eos="yes"), "ignore_eos"),
    (dict(logit_bias={-1: 1.0}), "logit_bias"), (dict(logit_bias={1: math.inf}), "logit_bias"),
    (dict(logit_bias={"7": 1.0}), "logit_bias"), (dict(logit_bias=[(1, 2.0)]), "logit_bias"),
    (dict(allowed_token_ids=[]), "allowed_token_ids"), (dict(allowed_token_ids=[-3]), "allowed_token_ids"),
    (dict(allowed_token_ids=5), "allowed_token_ids"), (dict(allowed_token_ids=[1], num_beams=2), "allowed_token_ids"),
    (dict(logit_bias={1: 1.0}, num_beams=2), "logit_bias"),
    (dict(allowed_token_ids=[1], structured_outputs={"json_object": True}), "allowed_token_ids"),
])
def test_the_cores_checks_name_the_parameter_on_the_error(kwargs, param):
    # HearthError.param: the server's 400 reports it without reading the message
    with pytest.raises(HearthError) as e:
        SamplingParams(**kwargs)
    assert e.value.param == param


def test_defaults_are_vllms_and_hugging_face_names_are_accepted():
    p = SamplingParams()
    assert (p.n, p.temperature, p.top_p, p.top_k, p.min_p, p.max_tokens, p.repetition_penalty) == \
        (1, 1.0, 1.0, -1, 0.0, 16, 1.0)
    q = SamplingParams(max_new_tokens=7, do_sample=False, num_beams=3)
    assert q.max_tokens == 7 and q.greedy and q.num_beams == 3
    assert SamplingParams(top_k=0).to_core().sampling.top_k == 0
    assert SamplingParams(top_k=-1).to_core().sampling.top_k == 0
    assert SamplingParams(stop="x").stop == ["x"]


def test_the_core_checks_its_parameters_too():
    with pytest.raises(ValueError, match="top_p must be in"):
        sampler(top_p=2.0)
    assert math.isfinite(sampler(seed=1).sample(np.zeros(4, np.float32)))
