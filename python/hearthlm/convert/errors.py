"""The one exception the converter raises for user errors.

A ConvertError carries a message meant for the person running
``hearth-convert``: the CLI prints it without a traceback and exits non-zero.
Anything else that escapes is a bug and keeps its traceback. It is a
``hearthlm.HearthError`` (hearthlm/errors.py).
"""

from ..errors import ConvertError

__all__ = ["ConvertError"]
