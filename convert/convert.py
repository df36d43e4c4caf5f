#!/usr/bin/env python3
"""Convert a Hugging Face model folder to GGUF: the same as the installed ``hearth-convert``.

    python convert/convert.py MODEL -o OUT.gguf -t q8_0

A thin entry over ``hearthlm.convert``; it also runs from a source checkout
without installing (it puts ``python/`` on the path).
"""

import sys
from pathlib import Path

try:
    from hearthlm.convert.cli import main
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))
    from hearthlm.convert.cli import main

if __name__ == "__main__":
    sys.exit(main())
