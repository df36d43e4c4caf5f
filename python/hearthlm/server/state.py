"""What every endpoint of one server shares: the model's facts, the engine
thread, the metrics and the limits."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from ..chat_template import render_chat_template, special_tokens_for, template_from_metadata
from ..engine import LLMEngine, encode
from ..errors import ChatTemplateError, HearthError
from ..sampling_params import SamplingParams
from ..errors import StructuredOutputError
from .async_engine import AsyncEngine, RequestStream
from .metrics import ServerMetrics
from .protocol import BadRequest


class ServerBusy(RuntimeError):
    """The waiting queue is full (503)."""


@dataclass
class ServerState:
    engine: LLMEngine
    served_model_name: str
    api_key: Optional[str] = None
    max_waiting: Optional[int] = None  # requests waiting at once before 503
    tool_call_parser: Optional[str] = None  # reads tool calls back for tool_choice "auto" (tool_parser.py)
    created: int = field(default_factory=lambda: int(time.time()))

    def __post_init__(self):
        self.metrics = ServerMetrics(self._snapshot, self.served_model_name)
        self.async_engine = AsyncEngine(self.engine, on_output=self.metrics.observe, on_abort=self.metrics.aborted)
        self.tokenizer = self.engine.get_tokenizer()
        self.metadata = self.engine.metadata()
        self.chat_template = template_from_metadata(self.metadata)
        self._special = special_tokens_for(self.metadata)
        self._token_bytes: Dict[int, bytes] = {}

    def _snapshot(self) -> dict:
        return self.async_engine.snapshot()

    @property
    def n_ctx(self) -> int:
        return self.engine.n_ctx

    # --- text --------------------------------------------------------------------
    def render_chat(self, conversation: List[dict], add_generation_prompt: bool = True,
                    chat_template_kwargs: Optional[dict] = None, continue_final_message: bool = False) -> str:
        """The prompt text of a conversation. chat_template_kwargs are more
        template variables; as in vLLM they win over the request's own
        add_generation_prompt (and give the template tools or documents)."""
        if not self.chat_template:
            raise BadRequest("the model has no chat template (tokenizer.chat_template): use /v1/completions",
                             "messages")
        if not conversation:
            raise BadRequest("messages: give at least one message", "messages")
        extra = dict(chat_template_kwargs or {})
        for name in ("messages", "template"):
            if name in extra:
                raise BadRequest(f"chat_template_kwargs: {name!r} cannot be set here", "chat_template_kwargs")
        add_generation_prompt = extra.pop("add_generation_prompt", add_generation_prompt)
        continue_final_message = extra.pop("continue_final_message", continue_final_message)
        for name, flag in (("add_generation_prompt", add_generation_prompt),
                           ("continue_final_message", continue_final_message)):
            if not isinstance(flag, bool):
                raise BadRequest(f"chat_template_kwargs: {name} must be true or false", "chat_template_kwargs")
        tools, documents = extra.pop("tools", None), extra.pop("documents", None)
        try:
            return render_chat_template(self.chat_template, conversation, add_generation_prompt=add_generation_prompt,
                                        tools=tools, documents=documents, continue_final_message=continue_final_message,
                                        **{**self._special, **extra})
        except ChatTemplateError as e:
            raise BadRequest(str(e), "messages") from None
        except HearthError as e:
            raise BadRequest(str(e), e.param or "messages") from None
        except (TypeError, ValueError) as e:  # tools / documents of the wrong shape
            raise BadRequest(f"chat_template_kwargs: {e}", "chat_template_kwargs") from None

    async def chat_prompt(self, conversation: List[dict], add_generation_prompt: bool = True,
                          chat_template_kwargs: Optional[dict] = None,
                          continue_final_message: bool = False) -> Tuple[str, List[int]]:
        """render_chat and its token ids, in a worker thread: a long
        conversation takes seconds, and the event loop serves every stream."""
        def work():
            text = self.render_chat(conversation, add_generation_prompt, chat_template_kwargs, continue_final_message)
            return text, self.tokenize(text, add_special=False)  # the template writes BOS if it wants one
        return await asyncio.to_thread(work)

    def tokenize(self, text: str, add_special: bool = True) -> List[int]:
        return encode(self.tokenizer, text, add_special, True)

    def detokenize(self, ids: List[int]) -> str:
        # special tokens as their text, as vLLM's (transformers' decode)
        return self.tokenizer.decode([int(t) for t in ids], True).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        b = self._token_bytes.get(token_id)
        if b is None:
            b = self.tokenizer.decode([token_id], True)
            self._token_bytes[token_id] = b
        return b

    def token_text(self, token_id: int) -> str:
        return self.token_bytes(token_id).decode("utf-8", errors="replace")

    # --- requests ----------------------------------------------------------------
    def new_request_id(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex}"

    async def submit(self, request_id: str, prompt: Union[str, List[int], dict], params: SamplingParams,
                     prompt_param: str = "prompt", first_of_request: bool = True,
                     structured_param: str = "response_format") -> RequestStream:
        """Hands one prompt to the engine; what it refuses is a BadRequest
        naming the field: prompt_param for a prompt too long for the context,
        max_tokens when the prompt leaves less room than it asks (vLLM's 400),
        n when its completions cannot fit in the KV pool, structured_param
        (response_format, or tools for a forced call) for a constraint that
        does not compile. The waiting queue's limit is
        checked once per HTTP request (at its first prompt): a request's own
        prompts never make it refuse itself."""
        waiting = self.async_engine.snapshot()["num_requests_waiting"]
        if first_of_request and self.max_waiting is not None and waiting >= self.max_waiting:
            raise ServerBusy(f"the server is busy: {waiting} requests are waiting (--max-waiting {self.max_waiting})")
        try:
            return await self.async_engine.add(request_id, prompt, params)
        except StructuredOutputError as e:
            raise BadRequest(str(e), structured_param) from None
        except HearthError as e:
            # the engine names the parameter at fault (n when the completions
            # cannot fit in the KV pool); none is the prompt's
            raise BadRequest(str(e), e.param or prompt_param) from None
