"""The one exception hierarchy of hearthlm.

Everything a user can get wrong (a bad file, a bad parameter, a prompt too
long for the context, a template that refuses a conversation, a model that
cannot be fetched) raises a ``HearthError``, a ``ValueError`` whose message
names what is wrong. The C++ core's errors arrive as ``HearthError`` too;
the parts below say where an error came from. Pure Python, so that the
converter and the launcher work without the compiled core.
"""


class HearthError(ValueError):
    """A problem with the input, explained in the message. param, where one
    parameter is at fault, names it (the server's 400 reports it)."""

    def __init__(self, *args, param=None):
        super().__init__(*args)
        self.param = param


class ConvertError(HearthError):
    """hearth-convert: a problem with the model folder or the arguments."""


class ChatTemplateError(HearthError):
    """A chat template that does not compile, refuses the conversation
    (raise_exception) or fails while rendering; the message says which."""


class ModelFetchError(HearthError):
    """The default model could not be found, fetched or verified. The message
    names the file or URL and what went wrong."""


class LauncherError(HearthError):
    """The C++ hearth executable cannot be found or run."""


class StructuredOutputError(HearthError):
    """A constraint on the output that cannot be compiled (a bad JSON schema,
    regex or grammar), or structured output without the llguidance package."""


__all__ = ["HearthError", "ConvertError", "ChatTemplateError", "ModelFetchError", "LauncherError",
           "StructuredOutputError"]
