"""Bad input files give a clear error that names the file and the problem:
a Python exception (hearthlm.HearthError, a ValueError) and, from the
`hearth` executable, a non-zero exit with a message. Never a crash."""

import struct
import subprocess

import pytest

from helpers.engine_helpers import hearth_binary
from helpers.gguf_files import tensor_info_offset_position, write_tiny_model, write_with_unsupported_type

hearthlm = pytest.importorskip("hearthlm")
from hearthlm import LLM, HearthError  # noqa: E402


@pytest.fixture
def good_file(tmp_path):
    return write_tiny_model(tmp_path / "good.gguf")


def corrupt(path, pos, new_bytes):
    data = bytearray(path.read_bytes())
    data[pos:pos + len(new_bytes)] = new_bytes
    path.write_bytes(bytes(data))
    return path


def bad_files(tmp_path, good):
    """name -> (path, words the message must contain)"""
    out = {}
    p = tmp_path / "magic.gguf"
    p.write_bytes(good.read_bytes())
    out["wrong magic"] = (corrupt(p, 0, b"GGML"), ["not a GGUF file"])

    p = tmp_path / "truncated.gguf"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    out["truncated"] = (p, ["truncated"])

    p = tmp_path / "header_cut.gguf"
    p.write_bytes(good.read_bytes()[:100])
    out["truncated header"] = (p, ["truncated"])

    p = tmp_path / "offset.gguf"
    p.write_bytes(good.read_bytes())
    pos = tensor_info_offset_position(p, "output_norm.weight")
    out["offset past the end"] = (corrupt(p, pos, struct.pack("<Q", 1 << 40)), ["output_norm.weight", "file has"])

    p = tmp_path / "misaligned.gguf"
    p.write_bytes(good.read_bytes())
    pos = tensor_info_offset_position(p, "output_norm.weight")
    old = struct.unpack("<Q", p.read_bytes()[pos:pos + 8])[0]
    out["misaligned offset"] = (corrupt(p, pos, struct.pack("<Q", old + 3)), ["not aligned"])

    p = tmp_path / "version.gguf"
    p.write_bytes(good.read_bytes())
    out["unknown version"] = (corrupt(p, 4, struct.pack("<I", 99)), ["version 99"])

    out["unsupported tensor type"] = (write_with_unsupported_type(tmp_path / "iq2xxs.gguf"), ["iq2_xxs", "not support"])
    out["unsupported architecture"] = (write_tiny_model(tmp_path / "mamba.gguf", arch="mamba"),
                                       ["architecture 'mamba'", "supported: llama, qwen2"])
    out["missing file"] = (tmp_path / "does-not-exist.gguf", ["cannot open", "does-not-exist.gguf"])
    return out


CASES = ["wrong magic", "truncated", "truncated header", "offset past the end", "misaligned offset",
         "unknown version", "unsupported tensor type", "unsupported architecture", "missing file"]


@pytest.mark.parametrize("case", CASES)
def test_bad_file_raises_hearth_error_naming_the_problem(tmp_path, good_file, case):
    path, words = bad_files(tmp_path, good_file)[case]
    with pytest.raises(HearthError) as info:
        LLM(path)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert str(path.name) in msg
    for word in words:
        assert word in msg, f"{case}: {word!r} not in {msg!r}"


@pytest.mark.parametrize("case", CASES)
def test_hearth_executable_exits_nonzero_with_message_on_bad_file(tmp_path, good_file, case):
    path, words = bad_files(tmp_path, good_file)[case]
    for args in (["--info", str(path)], ["-m", str(path), "--bench", "--prompt-tokens", "4", "--gen-tokens", "1"]):
        r = subprocess.run([hearth_binary(), *args], capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (args, r.returncode, r.stderr)  # 1 = error, not a signal (negative)
        assert "hearth: error:" in r.stderr and words[0] in r.stderr, r.stderr


def test_shape_that_contradicts_hparams_is_refused(tmp_path):
    # the file says 8 heads of 8 (so K has 2 x 8 rows), but attn_k holds 2 x 16: a converter bug must not run silently
    path = write_tiny_model(tmp_path / "m.gguf")
    data = path.read_bytes()
    key = b"llama.attention.head_count"
    pos = data.index(len(key).to_bytes(8, "little") + key) + 8 + len(key) + 4  # u32 value after the type
    corrupt(path, pos, struct.pack("<I", 8))
    with pytest.raises(HearthError, match=r"attn_k.weight' has shape \[64, 32\] but the hyperparameters say \[64, 16\]"):
        LLM(path)


def test_good_tiny_file_loads(good_file):
    llm = LLM(good_file, n_threads=1)
    assert llm.n_vocab == 256 and llm.metadata["general.architecture"] == "llama"
