"""Models by hub id: a GGUF file out of a Hugging Face (or ModelScope) repo,
fetched once into hearth's cache, as llama-cpp-python's
``Llama.from_pretrained(repo_id, filename)`` and llama.cpp's ``-hf
REPO[:QUANT]`` do; and a whole model folder for ``hearth-convert``.

The Hugging Face Hub goes through ``huggingface_hub``; ModelScope, with
``hub="modelscope"`` or ``HEARTH_USE_MODELSCOPE=True`` (as vLLM's
``VLLM_USE_MODELSCOPE``), through ``modelscope``. Neither is a dependency:
a missing one is a clear error naming the package to install.
"""
from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import List, Optional, Sequence

from .errors import ModelFetchError
from .model_cache import cache_dir

MODELSCOPE_VAR = "HEARTH_USE_MODELSCOPE"
HUBS = ("huggingface", "modelscope")
DEFAULT_QUANT = "Q4_K_M"  # what llama.cpp's -hf takes when REPO names no quant


def which_hub(hub: Optional[str] = None) -> str:
    """"huggingface" or "modelscope": the argument, else $HEARTH_USE_MODELSCOPE."""
    if hub is None:
        hub = "modelscope" if os.environ.get(MODELSCOPE_VAR, "").lower() in ("1", "true", "yes") else "huggingface"
    if hub not in HUBS:
        raise ModelFetchError(f"unknown hub {hub!r}; choose one of: {', '.join(HUBS)}")
    return hub


def _module(hub: str):
    name = "huggingface_hub" if hub == "huggingface" else "modelscope"
    try:
        return __import__(name)
    except ImportError:
        raise ModelFetchError(f"fetching from {hub} needs the {name} package: pip install {name}") from None


def hub_cache_dir() -> Path:
    """Where fetched hub files live: inside hearth's cache (``hearth --list-models`` shows them)."""
    return cache_dir() / "hub"


def snapshot(repo_id: str, allow_patterns: Sequence[str], hub: Optional[str] = None) -> Path:
    """The files of repo_id matching allow_patterns, fetched (once) into the cache; the local folder."""
    hub = which_hub(hub)
    mod = _module(hub)
    try:
        if hub == "huggingface":
            path = mod.snapshot_download(repo_id=repo_id, allow_patterns=list(allow_patterns),
                                         cache_dir=str(hub_cache_dir()))
        else:
            path = mod.snapshot_download(repo_id, allow_patterns=list(allow_patterns), cache_dir=str(hub_cache_dir()))
    except Exception as e:  # network, auth, a missing repo: all the user's to see
        raise ModelFetchError(f"{repo_id}: fetching it from {hub} failed: {e}") from None
    return Path(path)


def _repo_files(mod, hub: str, repo_id: str) -> List[str]:
    try:
        if hub == "huggingface":
            return list(mod.list_repo_files(repo_id))
        return [f["Path"] if isinstance(f, dict) else str(f) for f in mod.HubApi().get_model_files(repo_id, recursive=True)]
    except Exception as e:
        raise ModelFetchError(f"{repo_id}: listing its files on {hub} failed: {e}") from None


def pick_gguf(files: Sequence[str], repo_id: str, filename: Optional[str] = None, quant: Optional[str] = None) -> str:
    """The one GGUF file of a repo that `filename` (a name or glob, as
    llama-cpp-python takes it) or `quant` (as in llama.cpp's REPO:QUANT,
    case-insensitive, Q4_K_M by default) names; a clear error when none or
    several match (the first shard of a split file counts as the file)."""
    ggufs = [f for f in files if f.lower().endswith(".gguf")]
    if not ggufs:
        raise ModelFetchError(f"{repo_id} holds no GGUF file")
    if filename is not None:
        matches = [f for f in ggufs if fnmatch.fnmatch(f, filename) or fnmatch.fnmatch(Path(f).name, filename)]
        wanted = f"file {filename!r}"
    else:
        q = (quant or DEFAULT_QUANT).lower()
        matches = [f for f in ggufs if q in Path(f).name.lower()]
        wanted = f"quantization {quant or DEFAULT_QUANT!r}"
    # a split file: its first part is the one to open
    firsts = [f for f in matches if "-of-" not in f or "-00001-of-" in f]
    if len(firsts) == 1:
        return firsts[0]
    if not firsts:
        raise ModelFetchError(f"{repo_id} has no GGUF file for {wanted}; its GGUF files: {', '.join(sorted(ggufs))}")
    raise ModelFetchError(f"{repo_id}: several GGUF files match {wanted} ({', '.join(sorted(firsts))}); "
                          f"name one")


def gguf_file(repo_id: str, filename: Optional[str] = None, quant: Optional[str] = None,
              hub: Optional[str] = None) -> Path:
    """A GGUF file of repo_id, fetched once into the cache; its local path."""
    hub = which_hub(hub)
    mod = _module(hub)
    name = pick_gguf(_repo_files(mod, hub, repo_id), repo_id, filename, quant)
    try:
        if hub == "huggingface":
            path = mod.hf_hub_download(repo_id=repo_id, filename=name, cache_dir=str(hub_cache_dir()))
        else:
            path = Path(mod.snapshot_download(repo_id, allow_patterns=[name], cache_dir=str(hub_cache_dir()))) / name
    except Exception as e:
        raise ModelFetchError(f"{repo_id}: fetching {name} from {hub} failed: {e}") from None
    return Path(path)


def parse_hf_arg(value: str):
    """llama.cpp's -hf value: "owner/name" or "owner/name:QUANT" -> (repo_id, quant or None)."""
    repo, _, quant = value.partition(":")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise ModelFetchError(f"-hf {value!r}: give a hub repo as owner/name[:QUANT], e.g. "
                              f"bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M")
    return repo, quant or None
