"""`hearth` on PATH: names the default model when the arguments name none,
then becomes the C++ `hearth` executable.

The launcher only adds `-m PATH` in front of the arguments; everything else is
the C++ program's: it replaces this process (os.execv), so its output, exit
code, stdin, the terminal and signals such as Ctrl-C are exactly as if it had
been started directly.

The C++ executable, first match wins: $HEARTH_BIN; hearthlm/bin/hearth inside
the installed package (where `pip install` puts it); build/hearth of the
source tree this package sits in (a developer build run with PYTHONPATH=python).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Set

from .model_cache import ModelFetchError, default_model_path, list_models

EXE = "hearth.exe" if sys.platform == "win32" else "hearth"

MODEL_FLAGS = {"-m", "--model"}
# llama.cpp's -hf REPO[:QUANT] (and -hff FILE): this launcher fetches the GGUF
# file from the hub once into the cache, then passes it on as -m PATH.
HF_FLAGS = {"-hf", "--hf-repo"}
HF_FILE_FLAGS = {"-hff", "--hf-file"}
# With these the C++ program needs no model (or reads the file it is given).
NO_MODEL_FLAGS = {"--info", "-h", "--help", "--version"}
LIST_MODELS_FLAG = "--list-models"
# The C++ parser's flags that take a value (csrc/app/main.cpp). The value is
# skipped when looking for the flags above, so `-p --help` stays a prompt and
# `--chat-format chatml` is not taken for a model FILE.
# (tests/test_default_model.py checks it against `hearth --help`.)
VALUE_FLAGS = {"--info", "-m", "--model", "-p", "--prompt", "-n", "--max-tokens", "--n-predict",
               "--prompt-tokens", "--gen-tokens", "--tokens", "--reps", "-t", "--threads", "-c", "--ctx",
               "--kv-type", "--system", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty",
               "--presence-penalty", "--frequency-penalty", "-l", "--logit-bias", "--stop", "--beams", "--seed",
               "--activations", "--chat-format", "-hf", "--hf-repo", "-hff", "--hf-file"}


from .errors import LauncherError  # noqa: E402


def cpp_binary() -> str:
    """The C++ `hearth` executable this launcher runs."""
    override = os.environ.get("HEARTH_BIN")
    # The tests' HEARTH_BIN names "the hearth to test", which may be this very
    # launcher: then it means the binary below (exec'ing itself would loop).
    if override and not _is_this_launcher(override):
        if not os.path.isfile(override):
            raise LauncherError(f"HEARTH_BIN={override}: no such file")
        return override
    for candidate in (_packaged_binary(), _developer_binary()):
        if candidate.is_file():
            return str(candidate)
    raise LauncherError(f"the C++ hearth executable is neither installed ({_packaged_binary()}) nor built "
                        f"({_developer_binary()}); reinstall with `pip install .`, build with "
                        f"`cmake -S . -B build -G Ninja && ninja -C build`, or set HEARTH_BIN")


def _packaged_binary() -> Path:
    return Path(__file__).resolve().parent / "bin" / EXE


def _developer_binary() -> Path:
    # python/hearthlm/cli.py -> the repository root
    return Path(__file__).resolve().parents[2] / "build" / EXE


def _is_this_launcher(path: str) -> bool:
    me = sys.argv[0] if sys.argv else ""
    try:
        return bool(me) and os.path.samefile(path, me)
    except OSError:
        return False


def flags_in(args: Sequence[str]) -> Set[str]:
    """The arguments that are flags, not values of the flag before them."""
    found: Set[str] = set()
    i = 0
    while i < len(args):
        found.add(args[i])
        i += 2 if args[i] in VALUE_FLAGS else 1
    return found


def needs_default_model(args: Sequence[str]) -> bool:
    found = flags_in(args)
    positional = any(not a.startswith("-") for a in found)  # `hearth FILE.gguf`
    return not positional and not (found & (MODEL_FLAGS | HF_FLAGS | NO_MODEL_FLAGS | {LIST_MODELS_FLAG}))


def resolve_hf(args: Sequence[str]) -> List[str]:
    """The arguments with -hf REPO[:QUANT] (and -hff FILE) replaced by -m PATH
    of the GGUF file, fetched once into the cache."""
    from .hub import gguf_file, parse_hf_arg

    out: List[str] = []
    repo = filename = None
    i = 0
    while i < len(args):
        a = args[i]
        if a in HF_FLAGS | HF_FILE_FLAGS:
            if i + 1 >= len(args):
                raise LauncherError(f"{a} needs a value")
            if a in HF_FLAGS:
                repo = args[i + 1]
            else:
                filename = args[i + 1]
            i += 2
            continue
        out.append(a)
        i += 1
    if repo is None:
        if filename is not None:
            raise LauncherError("-hff FILE needs -hf REPO")
        return out
    repo_id, quant = parse_hf_arg(repo)
    return ["-m", str(gguf_file(repo_id, filename=filename, quant=quant)), *out]


def main(argv: Optional[Sequence[str]] = None) -> int:
    args: List[str] = list(sys.argv[1:] if argv is None else argv)
    try:
        if LIST_MODELS_FLAG in flags_in(args):
            print(list_models())
            return 0
        binary = cpp_binary()  # before a long download, not after
        if flags_in(args) & (HF_FLAGS | HF_FILE_FLAGS):
            args = resolve_hf(args)
        elif needs_default_model(args):
            args = ["-m", str(default_model_path()), *args]
    except (ModelFetchError, LauncherError) as e:
        print(f"hearth: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hearth: interrupted", file=sys.stderr)
        return 130
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(binary, [binary, *args])
    except OSError as e:
        print(f"hearth: error: cannot run {binary}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
