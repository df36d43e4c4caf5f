"""The C++ core's layers (csrc/<layer>/, README "Layout"): a file includes
project headers by their folder ("model/model.h"), and only from its own
layer or one before it. A lower layer that reached up (the model including
the tokenizer, the kernels including the model) fails here."""

import re
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parent.parent / "csrc"
# lowest first; each may include itself and those before it
LAYERS = ["base", "gguf", "kernels", "model", "text", "generate", "engine", "chat", "app", "python"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def sources():
    return sorted(p for p in CSRC.rglob("*") if p.suffix in (".h", ".cpp"))


def test_every_source_file_lives_in_a_layer_folder():
    stray = [str(p.relative_to(CSRC)) for p in sources() if p.relative_to(CSRC).parts[0] not in LAYERS]
    assert stray == []


def test_the_cmake_layer_list_is_this_order():
    cmake = (CSRC.parent / "CMakeLists.txt").read_text()
    listed = re.search(r"set\(HEARTH_LAYERS ([^)]*)\)", cmake).group(1).split()
    assert listed == LAYERS[: len(listed)]  # the libraries; app and python are the targets after them


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(CSRC)))
def test_includes_name_their_folder_and_point_down(path):
    layer = path.relative_to(CSRC).parts[0]
    for name in INCLUDE.findall(path.read_text()):
        assert "/" in name, f"{path.name} includes \"{name}\" without its layer folder"
        target = name.split("/")[0]
        assert target in LAYERS, f"{path.name} includes \"{name}\", outside csrc's layers"
        assert (CSRC / name).exists(), f"{path.name} includes \"{name}\", which does not exist"
        assert LAYERS.index(target) <= LAYERS.index(layer), (
            f"{layer}/{path.name} includes \"{name}\": the {layer} layer may not depend on {target}, "
            f"which comes after it ({' < '.join(LAYERS)})")
