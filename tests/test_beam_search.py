"""Beam search against transformers' generate(num_beams=k, do_sample=False):
the same best sequence (its end token included when it produced one, without
transformers' padding) and the same score within 1e-4, on tiny random models
of both architectures and on the real SmolLM2 weights; and the beams share
their prefix in the KV cache instead of holding k copies."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from hearthlm import LLM, SamplingParams  # noqa: E402
from helpers.hf_models import make_tiny_model  # noqa: E402
from test_parity_hf import ARCHS, TINY, convert  # noqa: E402

SCORE_TOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = {}
    for arch in ARCHS:
        d = tmp_path_factory.mktemp(f"beam-{arch}")
        folder = make_tiny_model(d / "hf", arch, seed=3, **TINY)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, attn_implementation="eager").eval()
        out[arch] = (convert(folder, d / "f32.gguf", "f32"), model)
    return out


def hf_beams(model, prompt, num_beams, max_new, eos, length_penalty=1.0, early_stopping=False):
    if eos is None:  # no end token at all (not even the config's default)
        model.generation_config.eos_token_id = None
    with torch.no_grad():
        out = model.generate(torch.tensor([prompt]), do_sample=False, num_beams=num_beams, max_new_tokens=max_new,
                             eos_token_id=eos, pad_token_id=0 if eos is None else eos[0],
                             length_penalty=length_penalty,
                             early_stopping=early_stopping, return_dict_in_generate=True, output_scores=True,
                             temperature=None, top_p=None, top_k=None)
    seq = out.sequences[0, len(prompt):].tolist()
    if eos is not None and any(t in eos for t in seq):  # cut transformers' padding after the end token
        seq = seq[: next(i for i, t in enumerate(seq) if t in eos) + 1]
    return seq, float(out.sequences_scores[0])


def ours(llm, prompt, num_beams, max_new, eos, length_penalty=1.0, early_stopping=False):
    """(best tokens, its score, peak KV blocks) from LLM.generate; eos: the
    end tokens (None: none at all)."""
    params = SamplingParams(num_beams=num_beams, max_tokens=max_new, length_penalty=length_penalty,
                            early_stopping=early_stopping, ignore_eos=True, stop_token_ids=eos or [])
    out = llm.generate([prompt], params, use_tqdm=False)[0]
    return out.outputs[0].token_ids, out.outputs[0].beam_score, out.metrics["kv_peak_bytes"] // _block_bytes(llm)


def _block_bytes(llm):
    return llm.llm_engine._engine.kv_block_bytes


def prompt_of(case: str, n=12, vocab=TINY["vocab"]):
    """A prompt that is the same in every process (zlib.crc32 of the case
    name; Python's string hashing is salted per process), without token 0: transformers masks the
    pad token (0 here) out of the attention, which would change its scores."""
    return np.random.default_rng(zlib.crc32(case.encode())).integers(1, vocab, n).tolist()


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("num_beams", [2, 4])
@pytest.mark.parametrize("case", ["no-eos", "eos-early", "eos-late", "length-penalty-2", "early-stopping",
                                  "never"])
def test_best_beam_equals_transformers_on_tiny_models(tiny, arch, num_beams, case):
    path, model = tiny[arch]
    llm = LLM(path, n_threads=2, kv_type="f32")
    prompt = prompt_of(f"{arch}-{num_beams}-{case}")
    # end tokens that beams actually meet: tokens of the greedy continuation
    with torch.no_grad():
        greedy = model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=12, min_new_tokens=12,
                                pad_token_id=0, eos_token_id=[])[0, len(prompt):].tolist()
    kw = {"no-eos": dict(eos=None), "eos-early": dict(eos=[greedy[1]]), "eos-late": dict(eos=[greedy[6], greedy[9]]),
          "length-penalty-2": dict(eos=[greedy[3]], length_penalty=2.0),
          "early-stopping": dict(eos=[greedy[2]], early_stopping=True),
          "never": dict(eos=[greedy[4]], early_stopping="never", length_penalty=0.5)}[case]
    want_seq, want_score = hf_beams(model, prompt, num_beams, 12, **kw)
    got_seq, got_score, _ = ours(llm, prompt, num_beams, 12, **kw)
    assert got_seq == want_seq
    assert abs(got_score - want_score) <= SCORE_TOL, (got_score, want_score)


def test_beams_share_the_prompt_blocks_in_the_kv_cache(tiny):
    path, _ = tiny["llama"]
    llm = LLM(path, n_threads=2, kv_type="f32", n_ctx=2048)
    prompt = prompt_of("shared-prefix", n=300)
    _, _, peak = ours(llm, prompt, 4, 8, None)
    block_tokens = 16
    prompt_blocks = -(-len(prompt) // block_tokens)
    per_beam_total = -(-(len(prompt) + 8) // block_tokens)
    independent = 4 * per_beam_total
    # the prompt once, plus each beam's own last blocks
    assert peak <= prompt_blocks + 4 * 2, (peak, independent)
    assert peak < independent / 2


def test_generate_with_num_beams_is_beam_search(tiny):
    path, model = tiny["qwen2"]
    llm = LLM(path, n_threads=2, kv_type="f32")
    prompt = prompt_of("generate")
    want_seq, want_score = hf_beams(model, prompt, 3, 10, None)
    got_seq, got_score, _ = ours(llm, prompt, 3, 10, None)
    assert got_seq == want_seq and abs(got_score - want_score) <= SCORE_TOL


# ---------------------------------------------------------------------------
# the real model
# ---------------------------------------------------------------------------

def test_beam_search_on_smollm2_equals_transformers(smollm2_f32_gguf, smollm2_hf_model, smollm2_tokenizer,
                                                    france_chat_ids, real_text_ids, record_property):
    llm = LLM(str(smollm2_f32_gguf), n_threads=2, kv_type="f32", n_ctx=1024)
    text = smollm2_tokenizer.encode("The history of the printing press", add_special_tokens=False).ids
    for name, ids in [("france-chat", france_chat_ids), ("text", text), ("prose256", real_text_ids)]:
        want_seq, want_score = hf_beams(smollm2_hf_model, ids, 4, 24, [2])
        out = llm.generate([ids], SamplingParams(num_beams=4, max_new_tokens=24))[0]
        got = out.outputs[0]
        # memory: the beams' cache against 4 independent caches of the final length
        per_token = _block_bytes(llm) / 16
        independent = 4 * (len(ids) + len(want_seq)) * per_token
        report = (f"\n[{name}] transformers: {smollm2_tokenizer.decode(want_seq)!r} ({want_score:.5f})"
                  f"\n[{name}] hearth:       {got.text!r} ({got.beam_score:.5f}); KV peak "
                  f"{out.metrics['kv_peak_bytes'] / 2**20:.2f} MiB vs {independent / 2**20:.2f} MiB for 4 caches")
        print(report)
        record_property(f"beams_{name}", report)
        assert got.token_ids == want_seq
        assert abs(got.beam_score - want_score) <= SCORE_TOL
        # with length_penalty 1 the score is the mean log-probability; cumulative_logprob is the sum
        assert abs(got.cumulative_logprob - got.beam_score * len(got.token_ids)) <= 1e-3
        if len(ids) >= 256:  # a long prompt: its blocks are held once, not four times
            assert out.metrics["kv_peak_bytes"] < 0.4 * independent


def test_beam_searches_that_fill_the_context_finish_and_leave_the_pool_whole(smollm2_gguf):
    # the sequence that used to fail every later call ("the KV cache is full:
    # 1 positions needed, room for 0"): beams as long as the context allows
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=256)
    chat = [{"role": "user", "content": "Tell me a long story about a dragon who learns to bake bread."}]
    a = llm.chat(chat, SamplingParams(num_beams=3, max_tokens=300, ignore_eos=True))[0]
    b = llm.chat(chat, SamplingParams(num_beams=4, max_tokens=100, ignore_eos=True))[0]
    n_prompt = len(a.prompt_token_ids)
    assert a.finish_reason == "length" and len(a.token_ids) == 256 - n_prompt  # the context's end
    assert b.finish_reason == "length" and len(b.token_ids) == 100
    llm.reset()
    assert llm.llm_engine.stats()["kv_blocks_used"] == 0
    c = llm.chat(chat, SamplingParams(temperature=0, max_tokens=8))[0]
    assert len(c.token_ids) == 8


def test_beam_search_to_the_end_of_the_context_finishes_with_length(smollm2_gguf):
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=64)
    prompt = list(range(1000, 1050))
    out = llm.generate([prompt], SamplingParams(num_beams=2, max_tokens=None, ignore_eos=True))[0]
    assert out.finish_reason == "length" and len(out.token_ids) == 64 - 50  # prompt and output fill the context, as greedy
    greedy = llm.generate([prompt], SamplingParams(temperature=0, max_tokens=None, ignore_eos=True))[0]
    assert greedy.finish_reason == "length" and len(greedy.token_ids) == len(out.token_ids)


def test_cumulative_logprob_is_the_sum_and_the_score_is_normalised(smollm2_gguf):
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=256, kv_type="f32")
    prompt = llm.tokenize("The capital of France is")
    out = llm.generate([prompt], SamplingParams(num_beams=3, max_tokens=6, ignore_eos=True, length_penalty=2.0))[0]
    best = out.outputs[0]
    llm.reset()
    logits = llm.eval(prompt + best.token_ids[:-1])[len(prompt) - 1:].astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    total = sum(logp[i, t] for i, t in enumerate(best.token_ids))
    assert abs(best.cumulative_logprob - total) < 1e-3
    assert abs(best.beam_score - total / len(best.token_ids) ** 2.0) < 1e-3
