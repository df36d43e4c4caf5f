"""Bad input files give a clear error that names the file and the problem:
a Python exception (hearthlm.HearthError, a ValueError) and, from the
`hearth` executable, a non-zero exit with a message. Never a crash."""

import struct
import subprocess

import pytest

from helpers import raw_gguf as raw
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


# ---------------------------------------------------------------------------
# every class of broken file in llama.cpp's tests/test-gguf.cpp, built byte by
# byte (tests/helpers/raw_gguf.py): each is refused with a HearthError that
# names what is wrong, from the Python API and from the executable
# ---------------------------------------------------------------------------
def _with_tensors(*names_shapes, **fields):
    infos, data = raw.f32_tensors(*names_shapes)
    return raw.RawGGUF(tensors=infos, data=data, **fields)


def _overlapping():
    # b starts inside a: 64 f32 are 256 bytes, b at 128
    infos = [raw.tensor_info("a.weight", [64], raw.GGML_F32, 0), raw.tensor_info("b.weight", [64], raw.GGML_F32, 128)]
    return raw.RawGGUF(tensors=infos, data=b"\0" * 384)


GGUF_CLASSES = {
    # name: (file, words the message must contain)
    "bad magic": (raw.RawGGUF(), ["not a GGUF file"]),
    "version 1": (raw.RawGGUF(version=1), ["GGUF version 1 is not supported"]),
    "version 4": (raw.RawGGUF(version=4), ["GGUF version 4 is not supported"]),
    "n_tensors -1": (raw.RawGGUF(n_tensors=-1), ["18446744073709551615 tensors", "cannot fit"]),
    "n_tensors huge": (raw.RawGGUF(n_tensors=1 << 40), ["1099511627776 tensors", "cannot fit"]),
    "n_kv -1": (raw.RawGGUF(n_kv=-1), ["18446744073709551615 metadata entries", "cannot fit"]),
    "n_kv huge": (raw.RawGGUF(n_kv=1 << 40), ["1099511627776 metadata entries", "cannot fit"]),
    "n_kv one too many": (raw.RawGGUF(n_kv=2), ["truncated or corrupt", "metadata key"]),
    "key longer than the file": (raw.RawGGUF(kvs=[raw.gguf_string("general.name", length=1 << 40)]),
                                 ["truncated or corrupt", "metadata key", "needs 1099511627776 bytes"]),
    "string value longer than the file": (
        raw.RawGGUF(kvs=[raw.gguf_string("general.name") + struct.pack("<I", raw.STRING) +
                         raw.gguf_string("x", length=(1 << 64) - 1)]),
        ["truncated or corrupt", "string value"]),
    "unknown value type": (raw.RawGGUF(kvs=[raw.gguf_string("general.name") + struct.pack("<I", 13)]),
                           ["'general.name'", "unknown value type 13"]),
    "array of 2^62 u32": (raw.RawGGUF(kvs=[raw.kv_array_header("tokenizer.ggml.token_type", raw.I32, 1 << 62)]),
                          ["truncated or corrupt", "array"]),
    "array of 2^62 strings": (raw.RawGGUF(kvs=[raw.kv_array_header("tokenizer.ggml.tokens", raw.STRING, 1 << 62)]),
                              ["truncated or corrupt", "string array"]),
    "array of 2^62 bytes": (raw.RawGGUF(kvs=[raw.kv_array_header("general.blob", raw.U8, 1 << 62)]),
                            ["truncated or corrupt", "array data"]),
    "nested array": (raw.RawGGUF(kvs=[raw.kv_array_header("general.nested", raw.ARRAY, 1)]),
                     ["'general.nested'", "nested or unknown array type"]),
    "duplicate key": (raw.RawGGUF(kvs=[raw.kv_string("general.architecture", "llama"), raw.kv_u32("a.b", 1),
                                       raw.kv_u32("a.b", 2)]),
                      ["duplicate metadata key 'a.b'"]),
    "alignment not a power of two": (raw.RawGGUF(kvs=[raw.kv_u32("general.alignment", 24)]),
                                     ["general.alignment must be a power of two, got 24"]),
    "duplicate tensor name": (_with_tensors(("a.weight", [8]), ("a.weight", [8])), ["duplicate tensor name 'a.weight'"]),
    "tensor past the end": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [64], raw.GGML_F32, 0)], data=b"\0" * 100),
                            ["'a.weight'", "needs bytes up to", "the file has"]),
    "tensor offset near 2^64": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [8], raw.GGML_F32, (1 << 64) - 32)],
                                            data=b"\0" * 32),
                                ["'a.weight'", "the file has"]),
    "overlapping tensors": (_overlapping(), ["tensors 'a.weight'", "'b.weight'", "overlap"]),
    "misaligned tensor data": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [8], raw.GGML_F32, 4)], data=b"\0" * 64),
                               ["'a.weight' offset 4 is not aligned to 32"]),
    "no dimensions": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [], raw.GGML_F32, 0)]),
                      ["'a.weight' has 0 dimensions"]),
    "five dimensions": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [1, 1, 1, 1, 1], raw.GGML_F32, 0)]),
                        ["'a.weight' has 5 dimensions"]),
    "zero-sized dimension": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [8, 0], raw.GGML_F32, 0)]),
                             ["'a.weight' has an invalid dimension 0"]),
    "element count overflows": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [1 << 40] * 4, raw.GGML_F32, 0)]),
                                ["'a.weight' is impossibly large"]),
    "dimension of 2^63": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [1 << 63], raw.GGML_F32, 0)]),
                          ["'a.weight' has an invalid dimension 9223372036854775808"]),
    "unknown tensor type": (raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [32], 9999, 0)], data=b"\0" * 128),
                            ["'a.weight'", "9999", "does not support"]),
    "row not a whole number of blocks": (
        raw.RawGGUF(tensors=[raw.tensor_info("a.weight", [33, 2], raw.GGML_Q4_0, 0)], data=b"\0" * 64),
        ["'a.weight' of type q4_0 has a row of 33 elements, not a multiple of its block size 32"]),
}


def _write_class(tmp_path, case):
    gguf_file, words = GGUF_CLASSES[case]
    data = gguf_file.to_bytes()
    if case == "bad magic":
        data = b"GGJT" + data[4:]
    path = tmp_path / (case.replace(" ", "_").replace("^", "") + ".gguf")
    path.write_bytes(data)
    return path, words


@pytest.mark.parametrize("case", list(GGUF_CLASSES))
def test_every_test_gguf_class_is_refused_naming_the_problem(tmp_path, case):
    path, words = _write_class(tmp_path, case)
    with pytest.raises(HearthError) as info:
        LLM(path)
    msg = str(info.value)
    assert path.name in msg
    for word in words:
        assert word in msg, f"{case}: {word!r} not in {msg!r}"


@pytest.mark.parametrize("case", ["n_tensors -1", "array of 2^62 strings", "overlapping tensors",
                                  "element count overflows", "unknown tensor type"])
def test_every_test_gguf_class_exits_the_executable_with_a_message(tmp_path, case):
    path, words = _write_class(tmp_path, case)
    r = subprocess.run([hearth_binary(), "--info", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "hearth: error:" in r.stderr and words[0] in r.stderr, r.stderr


def test_adjacent_tensors_do_not_count_as_overlapping(tmp_path):
    # the check must not refuse the tightest honest layout: b starts where a ends
    infos = [raw.tensor_info("a.weight", [8], raw.GGML_F32, 0), raw.tensor_info("b.weight", [8], raw.GGML_F32, 32)]
    path = raw.RawGGUF(tensors=infos, data=b"\0" * 64).write(tmp_path / "adjacent.gguf")
    with pytest.raises(HearthError) as info:
        LLM(path)
    assert "overlap" not in str(info.value)  # it fails later, for lack of a model, not at the reader
