"""Hub ids without the network: stubs stand in for huggingface_hub's and
modelscope's download functions, and the tests check what hearth asks them
for and that it runs what they return: LLM.from_pretrained, `hearth -hf
REPO[:QUANT]`, `hearth-convert OWNER/NAME` (huggingface, and modelscope by
flag or $HEARTH_USE_MODELSCOPE)."""
from __future__ import annotations

import sys
import types

import pytest

from helpers.gguf_files import write_tiny_model
from hearthlm import LLM, hub
from hearthlm.errors import HearthError

FILES = ["README.md", "model-Q8_0.gguf", "model-Q4_K_M.gguf", "model-q2_k.gguf", "big-Q4_K_M-00001-of-00002.gguf",
         "big-Q4_K_M-00002-of-00002.gguf"]


@pytest.fixture
def tiny_gguf(tmp_path):
    return write_tiny_model(tmp_path / "model-Q4_K_M.gguf", weight_type="q8_0")


@pytest.fixture
def fake_hf(monkeypatch, tmp_path, tiny_gguf):
    """huggingface_hub's list_repo_files / hf_hub_download / snapshot_download, recorded."""
    import huggingface_hub

    calls = []
    monkeypatch.setattr(huggingface_hub, "list_repo_files", lambda repo_id: calls.append(("list", repo_id)) or FILES)

    def download(repo_id, filename, cache_dir):
        calls.append(("download", repo_id, filename, cache_dir))
        return str(tiny_gguf)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setenv("HEARTH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HEARTH_USE_MODELSCOPE", raising=False)
    return calls


def test_pick_gguf_by_quant_file_or_glob():
    assert hub.pick_gguf(FILES[:4], "o/n") == "model-Q4_K_M.gguf"  # Q4_K_M by default, as llama.cpp's -hf
    assert hub.pick_gguf(FILES, "o/n", quant="q8_0") == "model-Q8_0.gguf"
    assert hub.pick_gguf(FILES, "o/n", quant="Q2_K") == "model-q2_k.gguf"
    assert hub.pick_gguf(FILES, "o/n", filename="*Q8_0.gguf") == "model-Q8_0.gguf"
    assert hub.pick_gguf(FILES, "o/n", filename="big-*") == "big-Q4_K_M-00001-of-00002.gguf"  # the first shard
    with pytest.raises(HearthError, match="several GGUF files match"):
        hub.pick_gguf(FILES, "o/n")  # model-Q4_K_M and big-Q4_K_M
    with pytest.raises(HearthError, match="no GGUF file for quantization 'Q6_K'.*model-Q8_0.gguf"):
        hub.pick_gguf(FILES, "o/n", quant="Q6_K")
    with pytest.raises(HearthError, match="holds no GGUF file"):
        hub.pick_gguf(["a.safetensors"], "o/n")


def test_llm_from_pretrained_fetches_once_into_hearths_cache(fake_hf, tmp_path):
    llm = LLM.from_pretrained("owner/model-GGUF", "model-Q4_K_M.gguf", n_threads=1, n_ctx=64)
    assert llm.n_vocab == 256
    assert ("list", "owner/model-GGUF") in fake_hf
    download = [c for c in fake_hf if c[0] == "download"]
    assert download == [("download", "owner/model-GGUF", "model-Q4_K_M.gguf", str(tmp_path / "cache" / "hub"))]


def test_hearth_hf_becomes_m_with_the_fetched_file(fake_hf, tiny_gguf, monkeypatch):
    from hearthlm import cli

    ran = {}
    monkeypatch.setattr(cli, "cpp_binary", lambda: "/bin/hearth-under-test")
    monkeypatch.setattr(cli.os, "execv", lambda binary, argv: ran.setdefault("argv", argv))
    cli.main(["-hf", "owner/model-GGUF:Q8_0", "-p", "hi", "-n", "4"])
    assert ran["argv"] == ["/bin/hearth-under-test", "-m", str(tiny_gguf), "-p", "hi", "-n", "4"]
    assert [c[2] for c in fake_hf if c[0] == "download"] == ["model-Q8_0.gguf"]
    ran.clear()
    cli.main(["-hf", "owner/model-GGUF", "-hff", "model-q2_k.gguf"])
    assert ran["argv"][1:3] == ["-m", str(tiny_gguf)]
    assert [c[2] for c in fake_hf if c[0] == "download"][-1] == "model-q2_k.gguf"


def test_hearth_hf_errors_are_clear(fake_hf, capsys, monkeypatch):
    from hearthlm import cli

    monkeypatch.setattr(cli, "cpp_binary", lambda: "/bin/hearth-under-test")
    assert cli.main(["-hf", "not-a-repo"]) == 1
    assert "owner/name[:QUANT]" in capsys.readouterr().err
    assert cli.main(["-hf", "owner/model-GGUF:Q6_K"]) == 1
    assert "no GGUF file for quantization 'Q6_K'" in capsys.readouterr().err


@pytest.fixture
def fake_modelscope(monkeypatch, tmp_path, tiny_gguf):
    calls = []

    def snapshot_download(repo_id, allow_patterns=None, cache_dir=None):
        calls.append((repo_id, list(allow_patterns or []), cache_dir))
        return str(tiny_gguf.parent)

    class HubApi:
        def get_model_files(self, repo_id, recursive=True):
            calls.append(("list", repo_id))
            return [{"Path": f} for f in FILES]

    monkeypatch.setitem(sys.modules, "modelscope", types.SimpleNamespace(snapshot_download=snapshot_download,
                                                                         HubApi=HubApi))
    monkeypatch.setenv("HEARTH_CACHE", str(tmp_path / "cache"))
    return calls


def test_modelscope_by_argument_or_variable(fake_modelscope, monkeypatch):
    path = hub.gguf_file("qwen/Qwen2.5-0.5B-Instruct-GGUF", quant="q8_0", hub="modelscope")
    assert path.name == "model-Q8_0.gguf"
    assert fake_modelscope[-1][:2] == ("qwen/Qwen2.5-0.5B-Instruct-GGUF", ["model-Q8_0.gguf"])
    monkeypatch.setenv("HEARTH_USE_MODELSCOPE", "True")
    assert hub.which_hub() == "modelscope"
    monkeypatch.setenv("HEARTH_USE_MODELSCOPE", "0")
    assert hub.which_hub() == "huggingface"


def test_convert_hub_id_from_modelscope(fake_modelscope, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from helpers.hf_models import make_tiny_model
    from hearthlm.convert import convert

    folder = make_tiny_model(tmp_path / "hf", "qwen2", vocab=256)
    monkeypatch.setitem(sys.modules["modelscope"].__dict__, "snapshot_download",
                        lambda repo_id, allow_patterns=None, cache_dir=None:
                        fake_modelscope.append((repo_id, list(allow_patterns))) or str(folder))
    out = convert("Qwen/Qwen2.5-0.5B-Instruct", tmp_path / "m.gguf", "f16", progress=False, hub="modelscope")
    assert out.is_file()
    repo, patterns = fake_modelscope[-1]
    assert repo == "Qwen/Qwen2.5-0.5B-Instruct" and "*.safetensors" in patterns


def test_a_missing_hub_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "modelscope", None)  # import fails
    with pytest.raises(HearthError, match="pip install modelscope"):
        hub.gguf_file("a/b", hub="modelscope")
