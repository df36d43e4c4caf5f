"""The `hearth` chat as a user drives it, through a real terminal (pexpect):
a two-turn conversation (one turn in Chinese), /reset, Ctrl-C in the middle
of an answer, Ctrl-D; `-p` one-shot; bad flag values. The answers are held
to the Python API's on the same conversation (greedy), which renders the
model's own Jinja template: so the C++ chat format is checked too."""
from __future__ import annotations

import re
import subprocess

import pytest

from helpers.engine_helpers import hearth_binary
from hearthlm import LLM, SamplingParams

pexpect = pytest.importorskip("pexpect")

GREEDY = ["--temp", "0", "-n", "48", "-t", "2", "-c", "1024"]
TURN1 = "What is the capital of France?"
TURN2 = "请用中文回答：法国的首都是哪里？"


@pytest.fixture(scope="module")
def api(smollm2_gguf):
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=1024)

    def answer(messages):
        return llm.chat(messages, SamplingParams(temperature=0, max_tokens=48))[0].text
    return answer


def spawn(path, *args):
    child = pexpect.spawn(hearth_binary(), ["-m", str(path), *GREEDY, *args], encoding="utf-8", timeout=120,
                          dimensions=(50, 500))
    child.expect("Ctrl-C stops an answer")
    child.expect_exact("> ")
    return child


def ask(child, text):
    child.sendline(text)
    child.expect_exact(text)  # the terminal's echo
    child.expect_exact("\r\n> ")
    return child.before.strip().replace("\r\n", "\n")


def test_two_turns_in_a_terminal_answer_as_the_api(smollm2_gguf, api):
    child = spawn(smollm2_gguf)
    a1 = ask(child, TURN1)
    assert a1 == api([{"role": "user", "content": TURN1}])
    a2 = ask(child, TURN2)
    assert a2 == api([{"role": "user", "content": TURN1}, {"role": "assistant", "content": a1},
                      {"role": "user", "content": TURN2}])
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_reset_forgets_the_conversation(smollm2_gguf, api):
    child = spawn(smollm2_gguf)
    ask(child, "My name is Ada. Please remember it.")
    child.sendline("/reset")
    child.expect_exact("(the conversation starts over)")
    child.expect_exact("> ")
    assert ask(child, "What is my name?") == api([{"role": "user", "content": "What is my name?"}])
    child.sendeof()  # Ctrl-D quits
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_ctrl_c_stops_the_answer_not_the_program(smollm2_gguf, api):
    child = pexpect.spawn(hearth_binary(), ["-m", str(smollm2_gguf), "--temp", "0.8", "--seed", "3", "-n", "3000",
                                            "-t", "2"], encoding="utf-8", timeout=120, dimensions=(50, 500))
    child.expect_exact("> ")
    child.sendline("Write a very long story about a dragon who learns to bake bread, in many chapters.")
    child.expect_exact("chapters.\r\n")  # the echo
    child.expect(r"\w+ \w+ \w+")  # the answer has begun
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact("> ")
    assert child.isalive()
    child.sendintr()  # Ctrl-C at the prompt: a fresh prompt, not the end
    child.expect_exact("> ")
    assert child.isalive()
    assert ask(child, TURN1)  # still answering
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_p_answers_one_prompt_in_the_chat_format(smollm2_gguf, api):
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-p", TURN1, *GREEDY], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == api([{"role": "user", "content": TURN1}]) + "\n"
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-p", TURN1, "--system", "Answer in French.",
                        "--stats", *GREEDY], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == api([{"role": "system", "content": "Answer in French."},
                            {"role": "user", "content": TURN1}]) + "\n"
    assert re.search(r"\[load [0-9.]+ s\] \[prefill \d+ tokens .* tokens/s; decode \d+ tokens .* tokens/s\]", r.stderr)


@pytest.mark.parametrize("args, words", [
    (["--temp", "-1"], r"temperature must be >= 0"),
    (["--top-p", "1.5"], r"top_p must be in \(0, 1\]"),
    (["--top-k", "-3"], r"--top-k needs an integer >= -1, got '-3'"),
    (["--min-p", "2"], r"min_p must be in \[0, 1\]"),
    (["--repeat-penalty", "0"], r"repetition_penalty must be > 0"),
    (["--beams", "0"], r"--beams needs an integer >= 1, got '0'"),
    (["--temp", "hot"], r"--temp needs a number, got 'hot'"),
    (["--no-chat"], r"--no-chat needs -p TEXT"),
    (["--chat-format", "vicuna"], r"--chat-format: unknown chat format 'vicuna'; the formats are chatml, .*glm4"),
    (["--chat-format", "chatml", "--no-chat", "-p", "x"], r"give either --chat-format NAME or --no-chat"),
])
def test_bad_flag_values_exit_2_naming_them(smollm2_gguf, args, words):
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert re.search(words, r.stderr), r.stderr


def test_chat_format_flag_overrides_the_files_template(smollm2_gguf, api):
    """--chat-format chatml writes plain ChatML (no SmolLM2 default system
    message): the answer the API gives with a plain ChatML template."""
    import pathlib

    chatml = (pathlib.Path(__file__).resolve().parent / "data" / "chat_templates" /
              "openhermes-2.5-mistral-7b.jinja").read_text(encoding="utf-8")
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-p", TURN1, "--chat-format", "chatml", *GREEDY],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=1024)
    want = llm.chat([{"role": "user", "content": TURN1}], SamplingParams(temperature=0, max_tokens=48),
                    chat_template=chatml)[0].text
    assert r.stdout == want + "\n"
    assert want != api([{"role": "user", "content": TURN1}])  # the default system message made a difference


def test_beams_flag_answers_with_beam_search(smollm2_gguf, smollm2_tokenizer):
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-p", TURN1, "--beams", "4", *GREEDY],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=1024)
    want = llm.chat([{"role": "user", "content": TURN1}], SamplingParams(num_beams=4, max_tokens=48))[0].text
    assert r.stdout == want + "\n"


def test_a_prompt_longer_than_the_context_is_a_clear_error(smollm2_gguf):
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-p", "word " * 200, "-c", "64", "--temp", "0"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "does not fit in the context of 64" in r.stderr


def test_stop_strings_cut_a_beam_answer_as_in_python(smollm2_gguf):
    # one C++ post-processing of beam hypotheses serves both front ends
    r = subprocess.run([hearth_binary(), "-m", str(smollm2_gguf), "-p", TURN1, "--beams", "2", "--stop", "Paris",
                        *GREEDY], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    llm = LLM(str(smollm2_gguf), n_threads=2, n_ctx=1024)
    out = llm.chat([{"role": "user", "content": TURN1}], SamplingParams(num_beams=2, max_tokens=48, stop=["Paris"]))[0]
    assert out.finish_reason == "stop" and out.outputs[0].stop_reason == "Paris"
    assert "Paris" not in out.text and out.text
    assert r.stdout == out.text + "\n"


def test_beam_search_to_the_end_of_a_small_context_finishes_and_the_next_turn_runs(smollm2_gguf):
    # a long answer in 128 tokens of context: the beams stop at its end
    # instead of failing, and nothing they held is lost for the next turn
    child = pexpect.spawn(hearth_binary(), ["-m", str(smollm2_gguf), "--beams", "3", "-c", "128", "-t", "2"],
                          encoding="utf-8", timeout=120, dimensions=(50, 500))
    child.expect("Ctrl-C stops an answer")
    child.expect_exact("> ")
    long_answer = ask(child, "Tell me a long story about a dragon.")
    assert len(long_answer) > 100 and "error" not in long_answer
    child.sendline("/reset")
    child.expect_exact("starts over")
    child.expect_exact("> ")
    again = ask(child, "Tell me a long story about a dragon.")
    assert again == long_answer  # beam search is deterministic, and the pool is whole again
    child.sendline("/exit")
    child.expect(pexpect.EOF)


def test_a_full_context_drops_the_oldest_turns_and_the_chat_goes_on(smollm2_gguf):
    """As llama-cli shifts its context: the system message stays, the oldest
    turns go, and every later turn is answered (not 'leaves no room')."""
    child = pexpect.spawn(hearth_binary(), ["-m", str(smollm2_gguf), "--temp", "0", "-n", "40", "-t", "2",
                                            "-c", "256", "--system", "Answer in one sentence."],
                          encoding="utf-8", timeout=120, dimensions=(50, 500))
    child.expect("Ctrl-C stops an answer")
    child.expect_exact("> ")
    answers = [ask(child, f"Tell me one fact about the number {n} and the ocean, please.") for n in range(8)]
    for a in answers:
        assert a and "error" not in a and "no room" not in a, a
    assert any("oldest turn" in a for a in answers[2:]), answers
    child.sendline("/exit")
    child.expect(pexpect.EOF)


def test_line_editing_keys_and_a_history_file(smollm2_gguf, api, tmp_path):
    """Arrows, Ctrl-A / Ctrl-E / Ctrl-W / Ctrl-U, Up for the last line, and the
    history kept in $HEARTH_HISTORY for the next session."""
    import os

    hist = tmp_path / "history"
    env = dict(os.environ, HEARTH_HISTORY=str(hist))
    child = pexpect.spawn(hearth_binary(), ["-m", str(smollm2_gguf), *GREEDY], env=env, encoding="utf-8",
                          timeout=120, dimensions=(50, 500))
    child.expect("Ctrl-C stops an answer")
    child.expect_exact("> ")

    def enter():
        child.send("\r")
        child.expect_exact("\r\n> ")
        return child.before

    left, ctrl = "\x1b[D", lambda k: chr(ord(k) - 96)
    child.send("What is the capital of Frnce?" + left * 4 + "a")  # "Fr|nce?" gets its a
    first = enter()
    assert api([{"role": "user", "content": TURN1}]) in first.replace("\r\n", "\n")
    child.sendline("/reset")
    child.expect_exact("starts over")
    child.expect_exact("> ")
    child.send("capital of Italy?" + ctrl("a") + "What is the " + ctrl("e") + " Thanks")
    enter()
    child.send("Hello there friend" + ctrl("w") + "pal")
    enter()
    child.send("something to forget" + ctrl("u") + "Bye")
    enter()
    child.send("\x1b[A\x1b[A")  # Up twice: "Hello there pal"
    enter()
    child.send("a line never sent")
    child.expect_exact("never sent")  # echoed: read before Ctrl-C flushes the terminal's input
    child.send("\x03")  # Ctrl-C drops the line: one line break, a fresh prompt
    child.expect_exact("> ")
    assert "\r\n\r\n" not in child.before, repr(child.before)
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    assert hist.read_text().splitlines() == [
        "What is the capital of France?", "/reset", "What is the capital of Italy? Thanks", "Hello there pal", "Bye",
        "Hello there pal", "/exit"]

    # the next session starts with that history: Up brings back the last line
    child = pexpect.spawn(hearth_binary(), ["-m", str(smollm2_gguf), *GREEDY], env=env, encoding="utf-8",
                          timeout=120, dimensions=(50, 500))
    child.expect_exact("> ")
    child.send("\x1b[A\x1b[A")  # "/exit" then "Hello there pal"
    child.send("\x1b[B")  # Down: "/exit" again
    child.send("\r")
    child.expect(pexpect.EOF)
