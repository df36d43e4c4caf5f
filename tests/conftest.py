"""Fixtures for tests on the real model files of `HEARTH_TEST_MODELS`.

See ../shared/models/README.md (CI sets HEARTH_TEST_MODELS to that folder).
Tests that need those files skip with a reason when the variable is unset.
The heavy fixtures are session-scoped: the f32 Hugging Face folder made from
the Q4_1 GGUF (~15 s, 538 MB) and the files the converter makes from it.
Set HEARTH_TEST_CACHE=DIR to keep the f32 folder across runs, and
HEARTH_CONVERT="CMD" to run another converter command than this tree's.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import weakref

import pytest

# llama.cpp (OpenMP) and torch spin while waiting for their threads; on a
# small machine shared with other work that makes a 1 s run take a minute.
# Tests measure agreement, never speed: wait passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# NumPy asks for transparent huge pages for every array of 4 MB or more. On
# the KVM machines the suite runs on, a fresh 2 MB huge page costs ~12 ms on
# first touch, so 300 MB of new arrays (logits and their float64 copy) took
# 1.9 s instead of 0.13 s (perplexity tests: 10.6 s -> 2.4 s). Tests want
# plain pages, here and in every child process.
os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
try:
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _set_madvise_hugepage
_set_madvise_hugepage(os.environ["NUMPY_MADVISE_HUGEPAGE"] != "0")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import llama_cpp_ref as ref  # noqa: E402

# Property tests draw the same examples on every run: a random draw could
# fail one run in many, which is a bug in the test, not a reason to re-run.
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:
    pass
else:
    _hypothesis_settings.register_profile("hearth", derandomize=True)
    _hypothesis_settings.load_profile("hearth")


# ---------------------------------------------------------------------------
# every engine gives its KV blocks back: after each test, an engine with no
# request left holds blocks only for eval()'s own tokens (a failed request,
# an abort, a closed stream, a preemption: none may leak a block)
# ---------------------------------------------------------------------------
_engines = weakref.WeakSet()


def _track_engines():
    try:
        from hearthlm.engine import LLMEngine
    except ImportError:  # the compiled core is not built: those tests fail on their own
        return
    init = LLMEngine.__init__

    def tracked(self, *args, **kwargs):
        init(self, *args, **kwargs)
        _engines.add(self)

    LLMEngine.__init__ = tracked


_track_engines()


@pytest.fixture(autouse=True)
def kv_blocks_come_back():
    yield
    for e in list(_engines):
        assert not e.has_unfinished_requests(), "a test left requests in an engine"
        held = e.stats()["kv_blocks_used"]
        assert held == -(-e._engine.n_past // 16), f"{held} KV blocks held after the test: a leak"


SMOLLM2_DIR = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Prose written for these tests (no copyright holder but us): plain English,
# numbers, punctuation, a few long words. Tokenized with SmolLM2's own
# tokenizer.json it gives well over 256 tokens; the tests take the first 256.
REAL_TEXT = """\
The village stood at the bend of a slow river, where the water turned brown \
in spring and clear again by the middle of summer. Most of the houses were \
built of grey stone taken from the hill behind them, and their roofs were \
steep, so that the winter snow would slide off before it grew too heavy. In \
the evenings the smoke of a hundred chimneys drifted across the fields, and \
the old miller, who had lived there for seventy-three years, liked to say \
that he could tell which family was cooking what by the smell alone.

Every Saturday a market filled the square in front of the church. Farmers \
brought eggs, cheese, apples and sacks of grain; a travelling tinker mended \
pots and sharpened knives for a few coins; and children ran between the \
stalls, hoping that someone would give them a piece of honey cake. The \
prices were written in chalk on small wooden boards, and they changed with \
the weather: when the rain had been kind, bread was cheap, and when the \
harvest failed, people counted every penny twice.

The schoolmaster kept a record of these things in a thick notebook. He \
wrote down the date of the first frost, the height of the river after each \
storm, and the number of swallows that returned to nest under the bridge. \
Nobody in the village quite understood why he did it, but years later, when \
engineers came from the city to build a new dam, they asked to borrow his \
notebooks, and they studied them for many weeks before they drew a single \
line on their plans.

Now the mill is silent and the market is smaller than it was, yet the river \
still bends in the same place, and on clear mornings the grey roofs shine \
like wet slate. Visitors who walk along the bank often stop at the bridge, \
look down at the water for a while, and then continue on their way without \
knowing exactly what made them pause.
"""

# A 64-token ChatML prompt (system + user + assistant header) for SmolLM2.
CHAT_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant. Answer in one or two short sentences."},
    {"role": "user", "content": "I walked in the park this morning and noticed that the old trees were "
                                "turning red and gold. Why do leaves change colour in autumn, and which "
                                "trees keep them green all winter?"},
]
CHAT_FRANCE = [{"role": "user", "content": "What is the capital of France?"}]


# ---------------------------------------------------------------------------
# the model folder
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def models_dir() -> pathlib.Path:
    d = os.environ.get("HEARTH_TEST_MODELS")
    if not d:
        pytest.skip("HEARTH_TEST_MODELS is not set (CI sets it to ../shared/models)")
    p = pathlib.Path(d)
    if not p.is_dir():
        pytest.skip(f"HEARTH_TEST_MODELS={d} is not a directory")
    return p


@pytest.fixture(scope="session")
def smollm2_gguf(models_dir) -> pathlib.Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF exactly as llama.cpp wrote it."""
    p = models_dir / SMOLLM2_DIR / SMOLLM2_GGUF
    if not p.is_file():
        pytest.skip(f"{p} is missing")
    return p


@pytest.fixture(scope="session")
def smollm2_tokenizer(models_dir):
    """SmolLM2's own tokenizer.json through Hugging Face `tokenizers` (not the
    tokenizer transformers rebuilds from the GGUF, which drops the digit
    split: see the models README)."""
    tokenizers = pytest.importorskip("tokenizers")
    p = models_dir / SMOLLM2_DIR / "hf" / "tokenizer.json"
    if not p.is_file():
        pytest.skip(f"{p} is missing")
    return tokenizers.Tokenizer.from_file(str(p))


def _sha256(path, n=1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(n), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_gguf, models_dir, tmp_path_factory) -> pathlib.Path:
    """A Hugging Face folder: `hf/` plus an f32 `model.safetensors` made from
    the GGUF (dequantized, Q/K permutation undone, names mapped back, tied
    lm_head). Verified: LlamaForCausalLM loads it strictly."""
    pytest.importorskip("gguf")
    pytest.importorskip("safetensors")
    src = models_dir / SMOLLM2_DIR / "hf"
    key = _sha256(smollm2_gguf)[:16]
    cache = os.environ.get("HEARTH_TEST_CACHE")
    root = pathlib.Path(cache) if cache else tmp_path_factory.getbasetemp()
    out = root / f"smollm2-135m-f32-hf-{key}"
    done = out / ".complete"
    if not done.is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_factory.mktemp("smollm2-hf-build") / "hf"
        ref.write_hf_folder(smollm2_gguf, src, tmp)
        # strict load: every HF tensor present with the right shape, none extra
        ref.load_hf_model(tmp)
        (tmp / ".complete").write_text(key)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(tmp), str(out))
    return out


@pytest.fixture(scope="session")
def smollm2_hf_model(smollm2_hf):
    """transformers' LlamaForCausalLM on the f32 weights (fp32, eager)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return ref.load_hf_model(smollm2_hf)


# ---------------------------------------------------------------------------
# token ids
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def real_text_ids(smollm2_tokenizer):
    """256 token ids of real English prose (SmolLM2 tokenizer, no BOS: SmolLM2's
    GGUF says add_bos_token = false)."""
    ids = smollm2_tokenizer.encode(REAL_TEXT, add_special_tokens=False).ids
    assert len(ids) >= 256, len(ids)
    return ids[:256]


def render_chat(models_dir, messages) -> str:
    """SmolLM2's chat template (hf/tokenizer_config.json) rendered with jinja2,
    with the assistant header, the way transformers renders it."""
    jinja2 = pytest.importorskip("jinja2")
    cfg = json.loads((models_dir / SMOLLM2_DIR / "hf" / "tokenizer_config.json").read_text())
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(cfg["chat_template"]).render(
        messages=messages, add_generation_prompt=True,
        bos_token="<|im_start|>", eos_token="<|im_end|>")


@pytest.fixture(scope="session")
def chat_ids(models_dir, smollm2_tokenizer):
    """A 64-token ChatML prompt (system, user, assistant header)."""
    ids = smollm2_tokenizer.encode(render_chat(models_dir, CHAT_MESSAGES),
                                   add_special_tokens=False).ids
    assert len(ids) == 64, f"chat prompt is {len(ids)} tokens, the tests want 64"
    return ids


@pytest.fixture(scope="session")
def france_chat_ids(models_dir, smollm2_tokenizer):
    """"What is the capital of France?" in the chat template (a near tie at the
    first answer token: see the models README)."""
    return smollm2_tokenizer.encode(render_chat(models_dir, CHAT_FRANCE),
                                    add_special_tokens=False).ids


# ---------------------------------------------------------------------------
# the converter
# ---------------------------------------------------------------------------

def _converter_cmd():
    """The converter of the hearthlm that the tests import: the module
    `hearthlm.convert.cli` run by this interpreter (so PYTHONPATH=python
    tests the tree, not an older install), else `hearth-convert` on PATH.
    HEARTH_CONVERT="CMD ARGS" overrides both (run as given, environment
    untouched), e.g. to try another checkout's converter."""
    override = os.environ.get("HEARTH_CONVERT")
    if override:
        return ["<override>"] + shlex.split(override)
    try:
        spec = importlib.util.find_spec("hearthlm.convert.cli")
    except Exception:  # hearthlm itself fails to import (no _core yet, ...)
        spec = None
    if spec is not None:
        return [sys.executable, "-c",
                "import sys; sys.argv[0] = 'hearth-convert'; "
                "from hearthlm.convert.cli import main; sys.exit(main())"]
    exe = shutil.which("hearth-convert")
    if exe:
        return [exe]
    return None


def convert_model(hf_folder, outtype: str, out_dir, extra_args=()) -> pathlib.Path:
    """Run the converter: `hearth-convert HF_FOLDER -o OUT -t OUTTYPE [extra_args]`.
    Skips when no converter is available yet; fails when it errors."""
    cmd = _converter_cmd()
    if cmd is None:
        pytest.skip("no converter yet (hearthlm.convert.cli / hearth-convert not found)")
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "vocab" if "--vocab-only" in extra_args else outtype
    out = out_dir / f"{pathlib.Path(hf_folder).name}-{suffix}.gguf"
    env = dict(os.environ)
    if cmd[0] == "<override>":
        cmd = cmd[1:]
    else:
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    r = subprocess.run(cmd + [str(hf_folder), "-o", str(out), "-t", outtype, *extra_args],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0, (
        f"converter failed ({r.returncode}) on {hf_folder} -t {outtype}:\n"
        f"{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    assert out.is_file() and out.stat().st_size > 0, out
    return out


def convert_vocab_only(folder, out_dir) -> pathlib.Path:
    """`hearth-convert FOLDER --vocab-only`: the tokenizer alone, as a GGUF file."""
    return convert_model(folder, "f32", out_dir, extra_args=("--vocab-only",))


def _converted(smollm2_hf, tmp_path_factory, outtype):
    return convert_model(smollm2_hf, outtype, tmp_path_factory.mktemp(f"smollm2-{outtype}"))


@pytest.fixture(scope="session")
def smollm2_f32_gguf(smollm2_hf, tmp_path_factory) -> pathlib.Path:
    return _converted(smollm2_hf, tmp_path_factory, "f32")


@pytest.fixture(scope="session")
def smollm2_q8_0_gguf(smollm2_hf, tmp_path_factory) -> pathlib.Path:
    return _converted(smollm2_hf, tmp_path_factory, "q8_0")


@pytest.fixture(scope="session")
def smollm2_q4_0_gguf(smollm2_hf, tmp_path_factory) -> pathlib.Path:
    return _converted(smollm2_hf, tmp_path_factory, "q4_0")


@pytest.fixture(scope="session")
def smollm2_q4_k_m_gguf(smollm2_hf, tmp_path_factory) -> pathlib.Path:
    """The Q4_K_M file people download, made by llama.cpp's own quantizer
    (llama-cpp-python) from the converter's f16 file: q4_K and q6_K, with
    q5_0 / q8_0 where SmolLM2's 576-wide rows are not a multiple of 256.
    Skips without llama-cpp-python."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python makes the Q4_K_M file")
    import ctypes

    f16 = _converted(smollm2_hf, tmp_path_factory, "f16")
    out = f16.with_name(f16.stem.replace("-f16", "") + "-Q4_K_M.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
    params.nthread = 2
    assert llama_cpp.llama_model_quantize(str(f16).encode(), str(out).encode(), ctypes.byref(params)) == 0
    return out


# ---------------------------------------------------------------------------
# the engines
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def hearth_llm_cls():
    """`hearthlm.LLM`, skipping while the engine's Python API isn't built."""
    try:
        mod = importlib.import_module("hearthlm")
        return mod.LLM
    except (ImportError, AttributeError) as e:
        pytest.skip(f"hearthlm.LLM is not available yet: {e}")


@pytest.fixture(scope="session")
def llama_cpp():
    return pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")


def hf_logits(model, ids):
    """transformers fp32 logits (eager attention, no_grad): numpy [n, vocab]."""
    return ref.hf_logits(model, ids)


@pytest.fixture(scope="session")
def hf_ref_cache(smollm2_hf_model):
    """Memoized transformers logits / greedy tokens, keyed by the ids."""
    cache = {}

    class _Ref:
        model = smollm2_hf_model

        def logits(self, ids):
            k = ("logits", tuple(ids))
            if k not in cache:
                cache[k] = ref.hf_logits(smollm2_hf_model, ids)
            return cache[k]

        def greedy(self, ids, n, stop_at_eos=False):
            k = ("greedy", tuple(ids), n, stop_at_eos)
            if k not in cache:
                cache[k] = ref.hf_greedy(smollm2_hf_model, ids, n, stop_at_eos=stop_at_eos)
            return cache[k]

    return _Ref()


# ---------------------------------------------------------------------------
# Kernel sets: tests that take `kernel_set` run once per set this CPU supports
# ---------------------------------------------------------------------------
def _supported_kernel_sets():
    try:
        from hearthlm import _core
    except ImportError:  # the engine is not built: such tests fail on their own import
        return ["scalar"]
    return _core.supported_kernels()


@pytest.fixture(params=_supported_kernel_sets())
def kernel_set(request):
    """Switches the engine to one kernel set for the test, and back after."""
    from hearthlm import _core

    before = _core.kernel_name()
    _core.use_kernels(request.param)
    yield request.param
    _core.use_kernels(before)
