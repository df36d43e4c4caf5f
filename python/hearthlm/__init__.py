"""hearthlm: run Llama- and Qwen-family language models on the CPU.

    from hearthlm import LLM, SamplingParams
    llm = LLM("model.gguf", n_threads=2)
    out = llm.generate(["The capital of France is"], SamplingParams(temperature=0.8, max_tokens=32))
    print(out[0].text)
    for piece in llm.chat([{"role": "user", "content": "Hello!"}], stream=True):
        print(piece, end="", flush=True)

The compiled core is imported on first use, so that the pure-Python parts
(the converter) work without it.
"""

__version__ = "0.1.0"
__all__ = ["LLM", "HearthError", "SamplingParams", "RequestOutput", "CompletionOutput"]

from .outputs import CompletionOutput, RequestOutput  # noqa: E402  (pure Python)
from .sampling_params import SamplingParams  # noqa: E402


def __getattr__(name):
    if name == "LLM":
        from .llm import LLM

        return LLM
    if name == "HearthError":
        from ._core import HearthError

        return HearthError
    raise AttributeError(f"module 'hearthlm' has no attribute {name!r}")
