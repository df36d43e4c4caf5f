"""hearth-convert: Hugging Face folders (safetensors / pytorch_model.bin) to GGUF.

One concept per module: ``cli`` (arguments), ``hf_folder`` (config and
weights), ``arch`` (name tables per architecture), ``tokenizer`` (vocab
export), ``quants`` (q8_0 / q4_0 encoders), ``writer`` (streaming GGUF
container), ``converter`` (the pipeline that ties them together).
"""

from .errors import ConvertError

__all__ = ["ConvertError", "convert"]


def convert(*args, **kwargs):
    """See :func:`hearthlm.convert.converter.convert`."""
    from .converter import convert as _convert

    return _convert(*args, **kwargs)
