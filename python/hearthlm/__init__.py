"""hearthlm: run Llama- and Qwen-family language models on the CPU.

    from hearthlm import LLM
    llm = LLM("model.gguf", n_threads=2)
    logits = llm.eval([1, 2, 3])

The compiled core is imported on first use, so that the pure-Python parts
(the converter) work without it.
"""

__version__ = "0.1.0"
__all__ = ["LLM", "HearthError"]


def __getattr__(name):
    if name == "LLM":
        from .llm import LLM

        return LLM
    if name == "HearthError":
        from ._core import HearthError

        return HearthError
    raise AttributeError(f"module 'hearthlm' has no attribute {name!r}")
