"""hearthlm: run Llama- and Qwen-family language models on the CPU.

    from hearthlm import LLM, SamplingParams
    llm = LLM("model.gguf", n_threads=2)
    outs = llm.generate(["The capital of France is", "Once upon a time"], SamplingParams(temperature=0.8, max_tokens=32))
    print(outs[0].text)
    for piece in llm.chat([{"role": "user", "content": "Hello!"}], stream=True):
        print(piece, end="", flush=True)

LLMEngine is the engine loop underneath (add_request / step /
abort_request), for servers. The compiled core is imported on first use, so
that the pure-Python parts (the converter) work without it.
"""

__version__ = "0.1.0"
__all__ = ["LLM", "LLMEngine", "HearthError", "SamplingParams", "StructuredOutputsParams", "RequestOutput",
           "CompletionOutput", "Logprob"]

from .errors import HearthError  # noqa: E402  (pure Python)
from .outputs import CompletionOutput, Logprob, RequestOutput  # noqa: E402
from .sampling_params import SamplingParams  # noqa: E402
from .structured import StructuredOutputsParams  # noqa: E402


def __getattr__(name):
    if name == "LLM":
        from .llm import LLM

        return LLM
    if name == "LLMEngine":
        from .engine import LLMEngine

        return LLMEngine
    raise AttributeError(f"module 'hearthlm' has no attribute {name!r}")
