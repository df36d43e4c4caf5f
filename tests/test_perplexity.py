"""hearth-perplexity's method (llama.cpp's): windows, the scored half, the
numbers on known logits, and its errors. The comparison with llama.cpp on
the real model is in test_real_model.py."""
import math

import numpy as np
import pytest

from hearthlm import perplexity as P


def test_windows_drop_the_partial_tail_and_put_bos_first():
    ids = list(range(10, 30))  # 20 tokens
    assert list(P.windows(ids, 8, None)) == [list(range(10, 18)), list(range(18, 26))]
    assert [w[0] for w in P.windows(ids, 8, bos=1)] == [1, 1]
    assert len(list(P.windows(ids, 8, None, max_chunks=1))) == 1


def test_uniform_logits_give_the_vocabulary_size():
    vocab = 50
    r = P.score(lambda w: np.zeros((len(w), vocab), np.float32), list(range(40)), n_ctx=16)
    assert math.isclose(r.ppl, vocab, rel_tol=1e-12)
    assert r.n_tokens == 2 * 7  # tokens 9..15 of each 16-token window are scored (the second half)
    assert r.stderr == pytest.approx(0.0, abs=1e-9)


def test_only_the_second_half_of_each_window_is_scored():
    # logits that put all weight on the right next token, except in the first half
    ids = list(np.random.default_rng(0).integers(0, 20, 64))

    def logits_of(w):
        out = np.zeros((len(w), 20))
        for i in range(len(w) - 1):
            if i >= len(w) // 2:
                out[i, w[i + 1]] = 50.0
        return out

    assert P.score(logits_of, ids, n_ctx=16).ppl == pytest.approx(1.0, abs=1e-12)


def test_a_text_shorter_than_one_window_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one window"):
        P.score(lambda w: np.zeros((len(w), 5)), [1, 2, 3], n_ctx=16)


def test_the_command_names_a_missing_text_file(tmp_path, capsys):
    assert P.main([str(tmp_path / "model.gguf"), str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt" in capsys.readouterr().err


def test_the_command_scores_a_real_file_as_the_function_does(smollm2_gguf, tmp_path, capsys):
    """The command on SmolLM2 and an English text: it prints the same
    perplexity as hearth_perplexity on the same windows."""
    text = tmp_path / "text.txt"
    text.write_text(" ".join(f"The {w} is on the table, and it is {c}." for w, c in
                             [("cup", "red"), ("book", "blue"), ("lamp", "old"), ("key", "small")] * 40))
    before = P.numpy_huge_pages(False)  # main() turns it off for its process: put it back after
    try:
        assert P.main([str(smollm2_gguf), str(text), "-c", "128", "--chunks", "2", "-t", "2"]) == 0
    finally:
        if before is not None:
            P.numpy_huge_pages(before)
    out = capsys.readouterr().out
    from hearthlm import LLM

    ids = LLM(str(smollm2_gguf), vocab_only=True).tokenize(text.read_text(), add_special=False)
    want = P.hearth_perplexity(str(smollm2_gguf), ids, 128, max_chunks=2, n_threads=2)
    assert f"hearth (q8 activations, KV f16): {want}" in out, out
    assert want.n_tokens == 2 * 63 and 1.0 < want.ppl < 50.0
