"""The `hearth` executable as a user runs it: --info, --bench, -p, --help,
and bad flags (exit 2 with a message naming the flag). Completions of real
text are in test_text_end_to_end.py."""

import re
import subprocess

import pytest

from helpers.engine_helpers import hearth_binary
from helpers.gguf_files import write_tiny_model


def run(*args):
    return subprocess.run([hearth_binary(), *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("cli") / "tiny-q8_0.gguf", arch="qwen2", weight_type="q8_0")


def test_info_prints_metadata_and_every_tensor(model):
    r = run("--info", model)
    assert r.returncode == 0, r.stderr
    assert re.search(r"general\.architecture\s+str\s+\"qwen2\"", r.stdout)
    assert re.search(r"qwen2\.block_count\s+u32\s+2", r.stdout)
    for name, ttype, shape in [("token_embd.weight", "q8_0", "[64, 256]"), ("blk.1.attn_q.bias", "f32", "[64]"),
                               ("output.weight", "q8_0", "[64, 256]")]:
        assert re.search(rf"{re.escape(name)}\s+{ttype}\s+{re.escape(shape)}", r.stdout), name
    assert "runs in hearth: yes (qwen2, 2 layers" in r.stdout


def test_bench_times_prefill_and_decode_of_random_or_given_tokens(model):
    r = run("-m", model, "--bench", "--prompt-tokens", 8, "--gen-tokens", 4, "--reps", 1, "-t", 2)
    assert r.returncode == 0, r.stderr
    assert "threads 2" in r.stdout
    assert re.search(r"prefill pp8: [0-9.]+ tokens/s", r.stdout)
    assert re.search(r"decode  tg4: [0-9.]+ tokens/s", r.stdout)
    r = run("-m", model, "--bench", "--tokens", "1,2,3", "--gen-tokens", 0, "--reps", 1, "--kv-type", "f32")
    assert r.returncode == 0, r.stderr
    assert "kv f32" in r.stdout and re.search(r"prefill pp3: ", r.stdout) and "decode" not in r.stdout


def test_help_lists_the_options():
    r = run("--help")
    assert r.returncode == 0
    for flag in ("--info", "--bench", "--prompt", "--max-tokens", "--no-chat", "--chat-format", "--threads", "--ctx",
                 "--kv-type", "--tokens", "--logit-bias", "HEARTH_KERNELS"):
        assert flag in r.stdout


@pytest.mark.parametrize("args, words", [
    (["--threads", "0"], "-t needs|--threads needs an integer >= 1, got '0'"),
    (["--kv-type", "q4_0"], "--kv-type must be f16, f32 or q8_0, got 'q4_0'"),
    (["--tokens", "1,x"], "--tokens needs an integer >= 0, got 'x'"),
    (["--prompt-tokens"], "--prompt-tokens needs a value"),
    (["--frobnicate"], "unknown argument '--frobnicate'"),
    (["--logit-bias", "12x"], r"--logit-bias needs TOKEN_ID\+BIAS or TOKEN_ID-BIAS \(e.g. 15043\+1\), got '12x'"),
    (["-l", "5+"], "-l needs TOKEN_ID"),
    (["-l", "-5+1"], "-l needs TOKEN_ID"),
    (["-l", "5+inf"], "-l needs a finite bias"),
])
def test_bad_flags_exit_2_naming_the_flag(model, args, words):
    r = run("-m", model, "--bench", *args)
    assert r.returncode == 2
    assert re.search(words, r.stderr), r.stderr


def test_context_too_small_for_the_bench_is_a_clear_error(model):
    r = run("-m", model, "--bench", "--prompt-tokens", 100, "--gen-tokens", 100, "-c", 64)
    assert r.returncode == 1
    assert "exceed the context 64" in r.stderr


def test_prompt_on_a_file_without_tokenizer_is_a_clear_error(model):
    r = run("-m", model, "-p", "hello")
    assert r.returncode == 1
    assert "carries no tokenizer" in r.stderr and "tiny-q8_0.gguf" in r.stderr


def test_chat_on_a_file_without_tokenizer_and_prompt_with_bench_are_errors(model):
    r = run("-m", model)  # the chat
    assert r.returncode == 1 and "carries no tokenizer" in r.stderr
    r = run("-m", model, "-p", "x", "--bench")
    assert r.returncode == 2 and "not both" in r.stderr
    r = run("-m", model, "-p", "x", "-n", "-2")
    assert r.returncode == 2 and "-n needs an integer >= -1, got '-2'" in r.stderr


# --- what a new user tries (issue 12's CLI points) ----------------------------

def test_version_prints_the_package_version():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', text, re.M).group(1)
    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"hearth {version}"


def test_usage_shows_the_model_flag_as_optional():
    r = run("--help")
    assert r.stdout.startswith("usage: hearth [-m] FILE [options]")
    assert "--version" in r.stdout


def test_a_model_file_without_m_is_the_model(model):
    r = run(model, "--bench", "--prompt-tokens", 4, "--gen-tokens", 1, "--reps", 1)
    assert r.returncode == 0, r.stderr
    assert f"model: {model} (qwen2)" in r.stdout
    r = run(model, model)
    assert r.returncode == 2 and "one model file at a time" in r.stderr


def test_info_prints_integer_arrays_as_integers(smollm2_gguf):
    r = run("--info", smollm2_gguf)
    line = next(ln for ln in r.stdout.splitlines() if "tokenizer.ggml.token_type" in ln)
    assert re.search(r"\[i32 × 49152\] 3 3 3 \.\.\.", line), line


def test_writing_the_answer_to_a_full_disk_is_an_error_with_status_1(smollm2_gguf):
    with open("/dev/full", "w") as full:
        r = subprocess.run([hearth_binary(), str(smollm2_gguf), "-p", "Hi", "-n", "4", "--temp", "0"],
                           stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 1
    assert "cannot write the output" in r.stderr and "No space left on device" in r.stderr


def test_warnings_for_more_threads_than_cores_and_a_context_above_training(smollm2_gguf):
    import os

    cores = os.cpu_count()
    r = run(smollm2_gguf, "-p", "Hi", "-n", 1, "--temp", 0, "-t", cores + 1, "-c", 9000)
    assert r.returncode == 0, r.stderr
    assert f"-t {cores + 1} is more threads than this machine's {cores} cores" in r.stderr
    assert "-c 9000 is above the model's training context 8192" in r.stderr
    r = run(smollm2_gguf, "-p", "Hi", "-n", 1, "--temp", 0, "-t", 1, "-c", 512)
    assert "warning" not in r.stderr


def test_logit_bias_moves_the_greedy_answer_as_llama_cpp_s_flag_does(smollm2_gguf):
    from hearthlm import LLM

    tok = LLM(str(smollm2_gguf), vocab_only=True).get_tokenizer()
    (paris,), (london,) = tok.encode(b" Paris", False), tok.encode(b" London", False)
    ask = [smollm2_gguf, "-p", "The capital of France is", "--no-chat", "-n", 4, "--temp", 0]
    plain = run(*ask)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith(" Paris")
    banned = run(*ask, "-l", f"{paris}-100")
    assert banned.returncode == 0, banned.stderr
    assert not banned.stdout.startswith(" Paris") and banned.stdout.strip()
    # two biases of one token add up, as llama.cpp's do
    forced = run(*ask, "--logit-bias", f"{london}+50", "-l", f"{london}+50")
    assert forced.stdout == " London London London London\n", forced.stdout
    outside = run(*ask, "-l", "99999+1")
    assert outside.returncode == 1
    assert "--logit-bias: token id 99999 is outside the vocabulary [0, 49152)" in outside.stderr
    beams = run(*ask, "-l", f"{paris}+1", "--beams", 2)
    assert beams.returncode == 2 and "logit_bias does not work with beam search" in beams.stderr


def test_ctrl_c_in_p_mode_stops_with_status_130(smollm2_gguf):
    import signal
    import time

    p = subprocess.Popen([hearth_binary(), str(smollm2_gguf), "-p", "Tell me a long story.", "--ignore-eos",
                          "-n", "4000", "-c", "4096"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stdout.read(1)  # the answer has started
    assert first
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
