"""N sequences decoding together, each adding one token per step: hearth's
engine and llama.cpp in the same shape, for bench.py's bN tests and
throughput.py's curve.

- hearth: an `LLMEngine` stepped until every sequence has its first token
  (the prefill, untimed), then the remaining steps timed.
- llama.cpp: the shape of its `llama-batched-bench`: one context with N
  sequence ids (unified KV cache), each prompt prefilled as its own sequence
  (untimed), then every step one `llama_decode` of N rows, one per sequence,
  each wanting logits (greedy argmax).

Both return (tokens produced in the timed steps, seconds).
"""
from __future__ import annotations

import time

import numpy as np


def greedy(max_tokens):
    from hearthlm import SamplingParams

    return SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)


class HearthBatched:
    """hearth's engine with room for max_seqs sequences of n_ctx tokens."""

    def __init__(self, model, threads, kv_type, max_seqs, prompt_len, n_ctx):
        from hearthlm import LLMEngine

        # a token budget that takes every prompt in one step, so that the
        # timed steps are decode only
        self.engine = LLMEngine(str(model), n_threads=threads, n_ctx=n_ctx, kv_type=kv_type, max_num_seqs=max_seqs,
                                max_num_batched_tokens=max(512, max_seqs * prompt_len),
                                kv_cache_tokens=max_seqs * n_ctx)
        self.runs = 0

    def run(self, prompts, tokens):
        """Each prompt generates `tokens` tokens; the steps after the first token are timed."""
        eng = self.engine
        self.runs += 1
        for i, p in enumerate(prompts):
            eng.add_request(f"batched{self.runs}-{i}", [int(t) for t in p], greedy(tokens))
        started = set()
        while len(started) < len(prompts):  # prefill, untimed
            started.update(o.request_id for o in eng.step() if o.outputs[0].token_ids)
        t = time.perf_counter()
        produced = 0  # counted, not assumed: N x (tokens - 1) when prefill took one step
        while eng.has_unfinished_requests():
            produced += sum(len(o.outputs[0].token_ids) for o in eng.step())
        return produced, time.perf_counter() - t


class LlamaCppBatched:
    """llama.cpp with one context of max_seqs sequence ids sharing n_ctx cells."""

    def __init__(self, model, threads, kv_type, max_seqs, n_ctx, extra_bufts):
        import llama_cpp.llama_cpp as lc
        from helpers import llama_cpp_ref as ref

        orig = lc.llama_context_default_params

        def params():  # Llama.__init__ takes no n_seq_max: give it here
            p = orig()
            p.n_seq_max = max_seqs
            if hasattr(p, "kv_unified"):
                p.kv_unified = True  # one cache of n_ctx cells that every sequence draws on
            return p

        lc.llama_context_default_params = params
        try:
            self.llm = ref.open_llama_cpp(model, n_ctx=n_ctx, n_threads=threads, kv_type=kv_type,
                                          logits_all=False, extra_bufts=extra_bufts, n_batch=512, n_ubatch=512)
        finally:
            lc.llama_context_default_params = orig
        self.lc, self.ctx, self.n_vocab = lc, self.llm.ctx, self.llm.n_vocab()
        self.batch = lc.llama_batch_init(max(512, max_seqs), 0, 1)

    def __del__(self):
        if getattr(self, "batch", None) is not None:
            self.lc.llama_batch_free(self.batch)
            self.batch = None

    def _decode(self, rows):  # rows: (token, pos, seq, wants logits)
        b = self.batch
        b.n_tokens = len(rows)
        for i, (tok, pos, seq, logits) in enumerate(rows):
            b.token[i], b.pos[i], b.n_seq_id[i] = tok, pos, 1
            b.seq_id[i][0], b.logits[i] = seq, logits
        if self.lc.llama_decode(self.ctx, b) != 0:
            raise RuntimeError("llama_decode failed")

    def _argmax(self, i):
        logits = self.lc.llama_get_logits_ith(self.ctx, i)
        return int(np.ctypeslib.as_array(logits, shape=(self.n_vocab,)).argmax())

    def run(self, prompts, tokens):
        """As HearthBatched.run: every prompt the same length."""
        lc = self.lc
        lc.llama_memory_clear(lc.llama_get_memory(self.ctx), True)
        last = []
        for seq, p in enumerate(prompts):  # prefill, untimed
            self._decode([(int(tok), pos, seq, pos == len(p) - 1) for pos, tok in enumerate(p)])
            last.append(self._argmax(-1))
        n, start = len(prompts), len(prompts[0])
        t = time.perf_counter()
        produced = 0
        for step in range(tokens - 1):
            self._decode([(last[seq], start + step, seq, True) for seq in range(n)])
            last = [self._argmax(seq) for seq in range(n)]
            produced += n
        return produced, time.perf_counter() - t
