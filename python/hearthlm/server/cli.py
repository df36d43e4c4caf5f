"""hearth-server: the OpenAI-compatible server (python -m hearthlm.server)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional, Sequence


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="hearth-server",
        description="Serve a GGUF model over the OpenAI API (/v1/chat/completions, /v1/completions, "
                    "/v1/models), with continuous batching and a prefix cache; a chat page at /.",
        epilog="Example: hearth-server -m model.gguf --port 8000, then "
               "openai.OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='none').")
    p.add_argument("-m", "--model", help="GGUF file (default: the default model, fetched once as hearth does)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("-t", "--threads", type=int, default=None, help="worker threads (default: every CPU)")
    p.add_argument("-c", "--ctx-size", type=int, default=None,
                   help="longest a request may grow, prompt and output (default: the model's, at most 4096)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="requests decoding at once (default 16)")
    p.add_argument("--max-num-batched-tokens", type=int, default=512, help="rows per engine step (default 512)")
    p.add_argument("--kv-cache-tokens", type=int, default=None, help="KV pool shared by all requests, in tokens")
    p.add_argument("--kv-type", choices=("f16", "f32", "q8_0"), default="f16",
                   help="KV cache element type (default f16; q8_0: 17/32 of f16's memory, as llama.cpp's q8_0 cache)")
    p.add_argument("--no-prefix-caching", action="store_true", help="turn the prefix cache off")
    p.add_argument("--api-key", default=os.environ.get("HEARTH_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1 (default: $HEARTH_API_KEY, else none)")
    p.add_argument("--served-model-name", default=None,
                   help="the model name clients send (default: the file name without .gguf)")
    p.add_argument("--max-waiting", type=int, default=None,
                   help="answer 503 when this many requests already wait (default: no limit)")
    p.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024, help="largest request body (default 4 MiB)")
    p.add_argument("--read-timeout", type=float, default=60.0,
                   help="seconds a request may take to arrive, headers and body, before the connection is "
                        "closed (default 60; slow or half-sent requests would hold a socket each)")
    p.add_argument("--enable-auto-tool-choice", action="store_true",
                   help='let tool_choice "auto" (the default with tools) read the model\'s own tool calls back; '
                        "needs --tool-call-parser")
    p.add_argument("--tool-call-parser", choices=("hermes",), default=None,
                   help="the format the model writes its calls in: hermes (<tool_call>{json}</tool_call>: "
                        "Qwen2.5, Hermes)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="uvicorn's log level (default warning)")
    args = p.parse_args(argv)
    if args.enable_auto_tool_choice and args.tool_call_parser is None:  # as vLLM checks it
        p.error("--enable-auto-tool-choice needs --tool-call-parser")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        import uvicorn

        from .app import create_app
        from .read_timeout import read_timeout_protocol
    except ImportError as e:
        if e.name and e.name.startswith("hearthlm"):  # our own extension, not a server dependency
            print(f"hearth-server: hearthlm's C++ core cannot be loaded ({e}); reinstall with pip install .",
                  file=sys.stderr)
        else:
            print(f"hearth-server: {e.name or e} is not installed; install the server's dependencies with "
                  "pip install 'hearthlm[server]'", file=sys.stderr)
        return 2
    try:  # before the model loads: a bad value fails at once
        http_protocol = read_timeout_protocol(args.read_timeout)
    except ValueError as e:
        print(f"hearth-server: --read-timeout: {e}", file=sys.stderr)
        return 2
    from .. import _core
    from ..engine import LLMEngine
    from ..errors import HearthError

    try:
        model = args.model
        if model is None:
            from ..model_cache import default_model_path
            model = str(default_model_path())
        engine = LLMEngine(model, n_threads=args.threads, n_ctx=args.ctx_size, kv_type=args.kv_type,
                           kv_cache_tokens=args.kv_cache_tokens, max_num_seqs=args.max_num_seqs,
                           max_num_batched_tokens=args.max_num_batched_tokens,
                           enable_prefix_caching=not args.no_prefix_caching)
    except (HearthError, ValueError, OSError) as e:
        print(f"hearth-server: {e}", file=sys.stderr)
        return 1
    name = args.served_model_name or Path(model).name.removesuffix(".gguf")
    app = create_app(engine, name, api_key=args.api_key, max_waiting=args.max_waiting,
                     max_body_bytes=args.max_body_bytes,
                     tool_call_parser=args.tool_call_parser if args.enable_auto_tool_choice else None)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                            http=http_protocol)
    server = uvicorn.Server(config)

    async def announce():  # once the socket listens: the real port when --port 0
        import asyncio
        while not server.started:
            await asyncio.sleep(0.05)
        sock = server.servers[0].sockets[0].getsockname() if server.servers else (args.host, args.port)
        print(f"hearth-server: serving {name} ({model}) at http://{sock[0]}:{sock[1]} "
              f"(chat page at /, API at /v1); kernels {_core.kernel_name()}, "
              f"{engine.n_threads} threads, n_ctx {engine.n_ctx}, max_num_seqs {args.max_num_seqs}",
              flush=True)

    async def serve():
        import asyncio
        task = asyncio.create_task(announce())
        await server.serve()
        task.cancel()

    import asyncio
    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    app.state.hearth.async_engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
