"""GLM-4 chat end to end: hearth-convert records GLM-4's turn markers as
llama.cpp's converter does (end of turn <|user|>, end of message
<|observation|>, [gMASK] as BOS), both end a generation, and the `hearth`
executable's glm4 chat format gives the prompt the Python API renders from
GLM-4-9B-chat's real template (the greedy answers are the same). The
forward's parity with transformers is in test_parity_hf.py; the format's
text against the template on many conversations in test_chat_template.py."""

import json
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

TEMPLATE = pathlib.Path(__file__).resolve().parent / "data" / "chat_templates" / "glm-4-9b-chat.jinja"
# GLM-4's special tokens, numbered after the Qwen2 tokenizer's (GLM-4's own
# tokenizer is not among the shared files; the pre-tokenizer regex is the same)
GLM_SPECIALS = ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]


def add_glm_specials(folder: pathlib.Path, first_id: int, template: bool = True) -> dict[str, int]:
    path = folder / "tokenizer.json"
    tj = json.loads(path.read_text(encoding="utf-8"))
    ids = {text: first_id + i for i, text in enumerate(GLM_SPECIALS)}
    tj["added_tokens"] += [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
                            "normalized": False, "special": True} for t, i in ids.items()]
    path.write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.pop("chat_template", None)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    if template:
        (folder / "chat_template.jinja").write_text(TEMPLATE.read_text(encoding="utf-8"), encoding="utf-8")
    return ids


@pytest.fixture(scope="module")
def glm(tmp_path_factory):
    if models_dir() is None:
        pytest.skip("HEARTH_TEST_MODELS is not set (the Qwen2 tokenizer stands in for GLM-4's)")
    d = tmp_path_factory.mktemp("glm")
    folder = make_tiny_model(d / "hf", "glm", vocab=151936, hidden=64, layers=2, heads=4, kv_heads=2, ffn=128,
                             seed=5, init_std=0.1)
    n_tokens = copy_tokenizer("qwen2", folder)
    ids = add_glm_specials(folder, n_tokens)
    return convert(folder, d / "glm.gguf", "f32", progress=False), ids


def test_converter_records_glm_turn_markers_as_llama_cpp(glm):
    path, ids = glm
    r = gguf.GGUFReader(str(path))
    value = lambda k: int(r.fields[k].parts[-1][0])  # noqa: E731
    assert bytes(r.fields["general.architecture"].parts[-1]).decode() == "chatglm"
    assert value("tokenizer.ggml.eot_token_id") == ids["<|user|>"]
    assert value("tokenizer.ggml.eom_token_id") == ids["<|observation|>"]
    assert value("tokenizer.ggml.bos_token_id") == ids["[gMASK]"]
    assert bytes(r.fields["tokenizer.chat_template"].parts[-1]).decode() == TEMPLATE.read_text(encoding="utf-8")


def test_user_and_observation_end_a_generation(glm):
    path, ids = glm
    ends = LLM(str(path), n_threads=1, n_ctx=64).get_tokenizer().end_of_generation
    assert {ids["<|user|>"], ids["<|observation|>"]} <= set(ends)


def test_hearth_p_answers_as_the_api_with_the_glm4_template(glm):
    path, ids = glm
    llm = LLM(str(path), n_threads=2, n_ctx=256)
    messages = [{"role": "user", "content": "Name a prime number."}]
    out = llm.chat(messages, SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0]
    # the template writes [gMASK]<sop> itself: once, at the start
    assert out.prompt_token_ids[:3] == [ids["[gMASK]"], ids["<sop>"], ids["<|user|>"]]
    assert out.prompt_token_ids[-1] == ids["<|assistant|>"] and out.prompt_token_ids.count(ids["[gMASK]"]) == 1
    args = [hearth_binary(), "-m", str(path), "-p", messages[0]["content"], "--temp", "0", "-n", "8",
            "--ignore-eos", "-c", "256"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.rstrip("\n") == out.text


def test_a_file_without_a_template_chats_with_chat_format(tmp_path):
    """A GLM file that carries no chat template: hearth says how to go on,
    and with --chat-format glm4 answers as the API with GLM-4's template."""
    if models_dir() is None:
        pytest.skip("HEARTH_TEST_MODELS is not set (the Qwen2 tokenizer stands in for GLM-4's)")
    folder = make_tiny_model(tmp_path / "hf", "glm", vocab=151936, hidden=64, layers=1, heads=4, kv_heads=2,
                             ffn=128, seed=6, init_std=0.1)
    ids = add_glm_specials(folder, copy_tokenizer("qwen2", folder), template=False)
    (folder / "chat_template.jinja").unlink(missing_ok=True)  # copy_tokenizer brings Qwen2's
    path = convert(folder, tmp_path / "glm-no-template.gguf", "f32", progress=False)
    assert "tokenizer.chat_template" not in gguf.GGUFReader(str(path)).fields
    args = [hearth_binary(), "-m", str(path), "-p", "Name a prime number.", "--temp", "0", "-n", "8", "--ignore-eos",
            "-c", "256"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "--chat-format NAME" in run.stderr and "--no-chat" in run.stderr
    run = subprocess.run(args + ["--chat-format", "glm4"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    llm = LLM(str(path), n_threads=2, n_ctx=256)
    out = llm.chat([{"role": "user", "content": "Name a prime number."}],
                   SamplingParams(temperature=0, max_tokens=8, ignore_eos=True),
                   chat_template=TEMPLATE.read_text(encoding="utf-8"))[0]
    assert out.prompt_token_ids[:2] == [ids["[gMASK]"], ids["<sop>"]]
    assert run.stdout.rstrip("\n") == out.text
