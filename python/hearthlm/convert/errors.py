"""The one exception the converter raises for user errors.

A ConvertError carries a message meant for the person running
``hearth-convert``: the CLI prints it without a traceback and exits non-zero.
Anything else that escapes is a bug and keeps its traceback.
"""


class ConvertError(ValueError):
    """A problem with the input or the arguments, explained in the message."""
