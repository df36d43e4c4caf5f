"""The FastAPI application: routes, errors in OpenAI's shape, the API key,
the request-size limit. create_app() takes a loaded LLMEngine; cli.py
loads one and runs the app under uvicorn."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from ..engine import LLMEngine
from ..errors import HearthError
from .async_engine import EngineDeadError, EngineStepError
from .auth import CHALLENGE, is_authorized
from .chat import create_chat_completion
from .completions import create_completion
from .metrics import CONTENT_TYPE
from .page import chat_page_headers
from .protocol import BadRequest, ChatCompletionRequest, CompletionRequest, DetokenizeRequest, TokenizeRequest
from .shapes import error_body
from .state import ServerBusy, ServerState

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024


class ModelNotFound(LookupError):
    pass


def create_app(engine: LLMEngine, served_model_name: str, *, api_key: Optional[str] = None,
               max_waiting: Optional[int] = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               tool_call_parser: Optional[str] = None) -> FastAPI:
    """An OpenAI-compatible app over engine. Its engine thread starts now and
    stops when the app shuts down (or with app.state.hearth.async_engine.shutdown())."""
    state = ServerState(engine, served_model_name, api_key=api_key, max_waiting=max_waiting,
                        tool_call_parser=tool_call_parser)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.async_engine.shutdown()

    app = FastAPI(title="hearthlm", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.hearth = state
    _install_errors(app)
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    app.add_middleware(_ApiKey, api_key=state.api_key)  # outermost: checked before the body is read

    def check_model(name: Optional[str]) -> None:
        if name is not None and name != state.served_model_name:
            raise ModelNotFound(name)

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": state.served_model_name, "object": "model",
                                            "created": state.created, "owned_by": "hearthlm",
                                            "max_model_len": state.n_ctx}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, raw: Request):
        check_model(req.model)
        return await create_chat_completion(state, req, raw)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, raw: Request):
        check_model(req.model)
        return await create_completion(state, req, raw)

    @app.post("/tokenize")
    async def tokenize(req: TokenizeRequest):
        check_model(req.model)
        if (req.prompt is None) == (req.messages is None):
            raise BadRequest("give either prompt or messages", "prompt")
        if req.messages is not None:
            _, tokens = await state.chat_prompt(req.conversation(), req.add_generation_prompt, req.template_kwargs(),
                                                req.continue_final_message)
        else:
            tokens = state.tokenize(req.prompt, add_special=req.add_special_tokens)
        return {"count": len(tokens), "max_model_len": state.n_ctx, "tokens": tokens}

    @app.post("/detokenize")
    async def detokenize(req: DetokenizeRequest):
        check_model(req.model)
        n_vocab = state.engine.n_vocab
        bad = [t for t in req.tokens if not 0 <= t < n_vocab]
        if bad:
            raise BadRequest(f"tokens: id {bad[0]} is out of range [0, {n_vocab})", "tokens")
        return {"prompt": state.detokenize(req.tokens)}

    @app.get("/health")
    async def health():
        if not state.async_engine.alive:
            return _error(503, "the engine has stopped", "service_unavailable")
        return Response(status_code=200)

    @app.get("/metrics")
    async def metrics():
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    page_headers = chat_page_headers(STATIC / "index.html")

    @app.get("/")
    async def chat_page():
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=page_headers)

    return app


# ----------------------------------------------------------------- errors --

def _error(status: int, message: str, type_: str, param: Optional[str] = None, code=None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = loc[0] if loc else None
        where = ".".join(loc) or "body"
        msg = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            msg, param, where = "the body is not valid JSON", None, "body"
        return _error(400, f"{where}: {msg}", "invalid_request_error", param)

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest):
        return _error(400, str(exc), "invalid_request_error", exc.param)

    @app.exception_handler(HearthError)
    async def hearth_error(request: Request, exc: HearthError):
        return _error(400, str(exc), "invalid_request_error")

    @app.exception_handler(ModelNotFound)
    async def no_model(request: Request, exc: ModelNotFound):
        served = request.app.state.hearth.served_model_name
        return _error(404, f"The model `{exc.args[0]}` does not exist (this server serves `{served}`).",
                      "invalid_request_error", "model", "model_not_found")

    @app.exception_handler(ServerBusy)
    async def busy(request: Request, exc: ServerBusy):
        return _error(503, str(exc), "service_unavailable")

    @app.exception_handler(EngineDeadError)
    async def dead(request: Request, exc: EngineDeadError):
        return _error(503, str(exc), "service_unavailable")

    @app.exception_handler(EngineStepError)
    async def step_failed(request: Request, exc: EngineStepError):
        return _error(500, str(exc), "internal_server_error", code=500)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug: still OpenAI's shape, never a bare page
        return _error(500, f"internal error: {exc!r}", "internal_server_error", code=500)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail), "invalid_request_error" if exc.status_code < 500 else "server_error")


class _TooLarge(StarletteHTTPException):
    """Raised while the body arrives; an HTTPException, so that FastAPI's body
    parsing passes it on as a 413 instead of a generic 400."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes")


class _ApiKey:
    """401 for a request without the API key (auth.py says which paths need
    it). Plain ASGI rather than @app.middleware("http"): that one relays
    every chunk of a streamed answer through a memory stream and a task."""

    def __init__(self, app, api_key: Optional[str]):
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            request = Request(scope)
            if not is_authorized(request.url.path, request.headers.get("authorization"), self.api_key):
                response = _error(401, "Invalid or missing API key (Authorization: Bearer ...)",
                                  "authentication_error", code="invalid_api_key")
                response.headers["WWW-Authenticate"] = CHALLENGE
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class _BodyLimit:
    """Refuses a request body over limit bytes with 413, by its
    Content-Length or, for a chunked body, as the bytes arrive."""

    def __init__(self, app, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send):
        body = json.dumps(error_body(f"the request body is larger than {self.limit} bytes",
                                     "invalid_request_error", None, 413)).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
