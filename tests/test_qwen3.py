"""Qwen3 end to end: hearth-convert writes a qwen3 file (llama.cpp's names:
attn_q_norm / attn_k_norm, the qwen2 pre-tokenizer), and the `hearth`
executable's Qwen3 chat format, with and without thinking, gives the prompt
the Python API renders from the real template (the greedy answers are the
same). The forward's parity with transformers is in test_parity_hf.py."""

import pathlib
import subprocess

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf")

from helpers.engine_helpers import hearth_binary  # noqa: E402
from helpers.hf_models import copy_tokenizer, make_tiny_model, models_dir  # noqa: E402
from hearthlm import LLM, SamplingParams  # noqa: E402
from hearthlm.convert import convert  # noqa: E402

TEMPLATE = pathlib.Path(__file__).resolve().parent / "data" / "chat_templates" / "qwen3-0.6b.jinja"


@pytest.fixture(scope="module")
def qwen3_file(tmp_path_factory):
    if models_dir() is None:
        pytest.skip("HEARTH_TEST_MODELS is not set (the Qwen2 tokenizer Qwen3 uses)")
    d = tmp_path_factory.mktemp("qwen3")
    folder = make_tiny_model(d / "hf", "qwen3", vocab=151936, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128,
                             seed=3, init_std=0.1)
    copy_tokenizer("qwen2", folder)
    (folder / "chat_template.jinja").write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    return convert(folder, d / "qwen3.gguf", "f32", progress=False)


def test_converted_qwen3_file_has_llama_cpp_names(qwen3_file):
    r = gguf.GGUFReader(str(qwen3_file))
    names = {t.name for t in r.tensors}
    assert {"blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight", "blk.1.attn_k_norm.weight"} <= names
    assert not any(n.endswith("attn_q.bias") for n in names)
    field = lambda k: bytes(r.fields[k].parts[-1]).decode()  # noqa: E731
    assert field("general.architecture") == "qwen3" and field("tokenizer.ggml.pre") == "qwen2"
    assert int(r.fields["qwen3.attention.key_length"].parts[-1][0]) == 16


@pytest.mark.parametrize("think", [True, False], ids=["thinking", "no_think"])
def test_hearth_p_answers_as_the_api_with_the_qwen3_template(qwen3_file, think):
    llm = LLM(str(qwen3_file), n_threads=2, n_ctx=256)
    messages = [{"role": "user", "content": "Name a prime number."}]
    want = llm.chat(messages, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True),
                    enable_thinking=think)[0].text
    args = [hearth_binary(), "-m", str(qwen3_file), "-p", messages[0]["content"], "--temp", "0", "-n", "8",
            "--ignore-eos", "-c", "256"] + ([] if think else ["--no-think"])
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip("\n") == want
