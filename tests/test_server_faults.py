"""The server survives its clients and its own faults: an exception inside
the engine loop fails only the requests in flight (500, OpenAI's error
shape) and later requests are served; a server killed mid-load starts again
and serves at once; a client that disconnects, one that reads very slowly
and one that sends half a request leave no request, KV block, thread or
connection behind, and a request that does not arrive within --read-timeout
(a slowloris) has its connection closed. Also the security defaults:
loopback only, the API key on every route but /health, the key compared in
constant time."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the server needs its extra (pip install '.[server]')")
httpx = pytest.importorskip("httpx")
psutil = pytest.importorskip("psutil")
uvicorn = pytest.importorskip("uvicorn")

from helpers.server_process import ServerProcess  # noqa: E402
from test_server import http, metric, wait_idle  # noqa: E402

from hearthlm import LLMEngine  # noqa: E402
from hearthlm.server import create_app  # noqa: E402

LONG = {"prompt": "Once upon a time", "max_tokens": 200, "ignore_eos": True, "temperature": 0}


# ------------------------------------------------ a fault inside the engine --

class FaultyEngine(LLMEngine):
    """An LLMEngine whose next step raises when told to: a stand-in for a
    bug in the core that surfaces mid-generation."""
    fail_next_step = False

    def step(self):
        if self.fail_next_step:
            self.fail_next_step = False
            raise RuntimeError("injected fault in step()")
        return super().step()


class InProcessServer:
    """The app under uvicorn in a thread, on a free loopback port, with real
    HTTP: for an engine that a test controls from outside."""

    def __init__(self, app):
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.05)
        self.url = "http://127.0.0.1:%d" % self.server.servers[0].sockets[0].getsockname()[1]

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def faulty(smollm2_gguf):
    engine = FaultyEngine(str(smollm2_gguf), n_threads=1, n_ctx=512)
    s = InProcessServer(create_app(engine, "m"))
    s.engine = engine
    yield s
    s.stop()


def _stream_lines(url, body, into: list, done: threading.Event):
    try:
        with httpx.stream("POST", url + "/v1/completions", json={**body, "stream": True}, timeout=120) as r:
            into.append(r.status_code)
            for line in r.iter_lines():
                if line:
                    into.append(line)
    except httpx.HTTPError as e:  # the server was killed under it
        into.append(e)
    done.set()


def test_an_exception_in_the_engine_loop_fails_the_requests_in_flight_and_the_server_goes_on(faulty):
    streamed, stream_done = [], threading.Event()
    threading.Thread(target=_stream_lines, args=(faulty.url, LONG, streamed, stream_done), daemon=True).start()
    plain = {}
    plain_thread = threading.Thread(target=lambda: plain.setdefault(
        "r", httpx.post(faulty.url + "/v1/completions", json=LONG, timeout=120)), daemon=True)
    plain_thread.start()
    deadline = time.monotonic() + 60
    while metric(faulty, "num_requests_running") < 2 or len(streamed) < 3:
        assert time.monotonic() < deadline, "the two requests did not start"
        time.sleep(0.02)
    faulty.engine.fail_next_step = True

    plain_thread.join(60)
    r = plain["r"]
    assert r.status_code == 500, r.text
    err = r.json()["error"]
    assert err["type"] == "internal_server_error" and err["code"] == 500
    assert "injected fault in step()" in err["message"]

    assert stream_done.wait(60)
    assert streamed[0] == 200  # the stream had started: the error arrives inside it
    events = [json.loads(line[6:]) for line in streamed[1:] if line != "data: [DONE]"]
    assert events[-1]["error"]["type"] == "internal_server_error"
    assert "injected fault" in events[-1]["error"]["message"]
    assert streamed[-1] == "data: [DONE]"

    wait_idle(faulty)  # the failed requests gave their KV blocks back
    again = httpx.post(faulty.url + "/v1/completions", json={**LONG, "max_tokens": 5}, timeout=60)
    assert again.status_code == 200 and again.json()["choices"][0]["finish_reason"] == "length"
    assert httpx.get(faulty.url + "/health").status_code == 200
    assert faulty.app.state.hearth.async_engine.step_failures == 1


def test_an_unexpected_exception_in_a_handler_is_a_500_in_openai_shape(faulty, monkeypatch):
    state = faulty.app.state.hearth
    monkeypatch.setattr(state, "tokenize", lambda *a, **k: 1 / 0)
    r = httpx.post(faulty.url + "/tokenize", json={"prompt": "hi"}, timeout=30)
    assert r.status_code == 500
    assert r.json()["error"]["type"] == "internal_server_error" and "ZeroDivisionError" in r.json()["error"]["message"]


def test_max_tokens_that_cannot_fit_beside_the_prompt_is_a_400_as_in_vllm(faulty):
    r = httpx.post(faulty.url + "/v1/completions", json={"prompt": "hi", "max_tokens": 100000}, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == "max_tokens" and "maximum context length is 512 tokens" in err["message"]
    r = httpx.post(faulty.url + "/v1/chat/completions", timeout=30,
                   json={"messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 10 ** 30})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"


# --------------------------------------------------- killed and restarted --

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_killed_mid_load_serves_at_once_when_started_again(smollm2_gguf):
    port = _free_port()
    args = ["-m", str(smollm2_gguf), "-t", "1", "-c", "512", "--port", str(port)]
    # killed while it loads the model
    early = subprocess.Popen([sys.executable, "-m", "hearthlm.server", *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    early.send_signal(signal.SIGKILL)
    early.wait(30)
    # killed under load: streams running, KV blocks in use
    s = ServerProcess(args)
    for _ in range(3):
        threading.Thread(target=_stream_lines, args=(s.url, LONG, [], threading.Event()), daemon=True).start()
    deadline = time.monotonic() + 60
    while metric(s, "kv_blocks_used") == 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    s.proc.send_signal(signal.SIGKILL)
    assert s.proc.wait(30) == -signal.SIGKILL
    # nothing to repair: the same port, served at once
    again = ServerProcess(args)
    try:
        assert again.url.endswith(f":{port}")
        r = httpx.post(again.url + "/v1/completions", json={**LONG, "max_tokens": 4}, timeout=60)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 4
        wait_idle(again)
    finally:
        assert again.stop() == 0


# ------------------------------------------------------ misbehaving clients --

READ_TIMEOUT = 1.0  # the server fixture's --read-timeout, seconds

@pytest.fixture(scope="module")
def server(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "1024", "--max-num-seqs", "8",
                       "--read-timeout", str(READ_TIMEOUT)])
    yield s
    assert s.stop() == 0, "".join(s.log)[-2000:]


def _resources(server) -> tuple:
    proc = psutil.Process(server.proc.pid)
    return proc.num_threads(), len([c for c in proc.net_connections(kind="tcp") if c.status == "ESTABLISHED"])


def _raw_request(server, body: bytes, headers: str) -> socket.socket:
    host, port = server.url.rsplit("/", 1)[1].split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(headers.encode() + body)
    return sock


def _wait_resources(server, baseline, timeout=30.0):
    deadline = time.monotonic() + timeout
    while _resources(server) != baseline:
        assert time.monotonic() < deadline, f"threads and connections {_resources(server)} != {baseline}"
        time.sleep(0.1)


def test_disconnecting_slow_and_half_sent_clients_leave_nothing_behind(server):
    wait_idle(server)
    http(server, "GET", "/health")
    baseline = _resources(server)

    # 1. one that walks away mid-stream
    body = json.dumps({**LONG, "max_tokens": 600, "stream": True}).encode()
    gone = _raw_request(server, body, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                                      f"Content-Length: {len(body)}\r\n\r\n")
    assert gone.recv(1024).startswith(b"HTTP/1.1 200")
    gone.close()

    # 2. one that reads its stream a trickle at a time, through a tiny receive window
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    host, port = server.url.rsplit("/", 1)[1].split(":")
    slow.connect((host, int(port)))
    slow.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert slow.recv(64).startswith(b"HTTP/1.1 200")

    # 3. half a request: a body shorter than its Content-Length, and half a header
    half_body = _raw_request(server, b'{"prompt": "hi", "max_to', "POST /v1/completions HTTP/1.1\r\nHost: t\r\n"
                                                               "Content-Type: application/json\r\n"
                                                               "Content-Length: 1000\r\n\r\n")
    half_head = _raw_request(server, b"", "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Le")

    # meanwhile everyone else is served
    status, out = http(server, "POST", "/v1/completions", {**LONG, "max_tokens": 8})
    assert status == 200 and out["usage"]["completion_tokens"] == 8

    # the slow reader's request runs to its end in the engine whatever the
    # client's pace (its output waits in the server, bounded by max_tokens)
    deadline = time.monotonic() + 120
    while metric(server, "num_requests_running") > 0:
        assert time.monotonic() < deadline
        slow.recv(256)
        time.sleep(0.05)
    for sock in (slow, half_body, half_head):
        sock.close()

    wait_idle(server)
    _wait_resources(server, baseline)  # no thread, no connection left
    status, _ = http(server, "POST", "/v1/completions", {**LONG, "max_tokens": 2})
    assert status == 200


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """Reads (and drops) what the server sends until it closes the connection."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


def test_requests_that_do_not_arrive_within_the_read_timeout_are_cut_off(server):
    wait_idle(server)
    baseline = _resources(server)
    silent = _raw_request(server, b"", "")
    half_body = _raw_request(server, b'{"prompt": "hi"', "POST /v1/completions HTTP/1.1\r\nHost: t\r\n"
                                                      "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    # a slowloris: a header a byte at a time, never finished (each byte would
    # reset a timer of time since the last byte; the deadline does not move)
    trickle = _raw_request(server, b"", "GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
    for _ in range(int(4 * READ_TIMEOUT / 0.1)):
        try:
            trickle.sendall(b"a")
        except OSError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the trickling connection was still open after four read timeouts")
    for sock in (silent, half_body, trickle):
        assert _closed_by_server(sock, within=30)
        sock.close()
    _wait_resources(server, baseline)
    status, _ = http(server, "GET", "/health")
    assert status == 200


def test_the_read_timeout_does_not_cut_a_response_that_streams_longer(server):
    # the request is read at once; its answer then streams past the timeout
    # (600 tokens on one thread take seconds, and the client also waits)
    wait_idle(server)
    body = json.dumps({**LONG, "max_tokens": 600, "stream": True}).encode()
    sock = _raw_request(server, body, "POST /v1/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                                      f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    first = sock.recv(64)
    assert first.startswith(b"HTTP/1.1 200")
    time.sleep(2 * READ_TIMEOUT)
    sock.settimeout(60)
    chunks = [first]
    while True:
        data = sock.recv(65536)
        if not data:
            break
        chunks.append(data)
    sock.close()
    text = b"".join(chunks).decode()
    assert "data: [DONE]" in text
    assert '"finish_reason":"length"' in text.replace(" ", "")


def test_a_read_timeout_that_is_not_positive_is_refused():
    from hearthlm.server.cli import main
    from hearthlm.server.read_timeout import read_timeout_protocol
    assert main(["--read-timeout", "0"]) == 2
    assert main(["--read-timeout", "nan"]) == 2
    with pytest.raises(ValueError, match="read timeout"):
        read_timeout_protocol(-1)


# ---------------------------------------------------------- security defaults --

def test_the_server_listens_on_loopback_unless_told(smollm2_gguf):
    from hearthlm.server.cli import parse_args

    assert parse_args(["-m", "x"]).host == "127.0.0.1"
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "128"])
    try:
        assert s.url.startswith("http://127.0.0.1:")
        listening = [c for c in psutil.Process(s.proc.pid).net_connections(kind="tcp") if c.status == "LISTEN"]
        assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening)
    finally:
        assert s.stop() == 0


@pytest.fixture(scope="module")
def keyed(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "256", "--api-key", "sesame"])
    yield s
    assert s.stop() == 0


ROUTES = {"/": None, "/v1/models": None, "/metrics": None, "/no-such-route": None,
          "/tokenize": {"prompt": "hi"}, "/detokenize": {"tokens": [1]},
          "/v1/completions": {"prompt": "hi", "max_tokens": 2},
          "/v1/chat/completions": {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}}


@pytest.mark.parametrize("path", list(ROUTES))
def test_with_an_api_key_every_route_but_health_needs_it(keyed, path):
    body = ROUTES[path]
    method = "GET" if body is None else "POST"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer sesam"},
                    {"Authorization": "Bearer sesame2"}, {"Authorization": "sesame"},
                    {"Authorization": "Basic " + base64.b64encode(b"user:wrong").decode()}):
        status, err = http(keyed, method, path, body, headers)
        assert status == 401, (path, headers, status)
        assert err["error"]["type"] == "authentication_error"
    for good in ("Bearer sesame", "Basic " + base64.b64encode(b"anyone:sesame").decode()):
        status, _ = http(keyed, method, path, body, {"Authorization": good})
        assert status == (404 if path == "/no-such-route" else 200), (path, good, status)


def test_health_needs_no_key_and_a_browser_is_asked_for_one(keyed):
    assert http(keyed, "GET", "/health")[0] == 200
    r = httpx.get(keyed.url + "/")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic ")


def test_the_key_is_compared_in_constant_time():
    # the comparison is hmac.compare_digest: its time does not depend on
    # where a guess first differs (checked by reading the code path, not timed)
    import inspect

    from hearthlm.server import auth

    assert "compare_digest" in inspect.getsource(auth.is_authorized)
    assert auth.is_authorized("/v1/models", "Bearer k3y", "k3y")
    assert not auth.is_authorized("/v1/models", "Bearer k3", "k3y")
    assert auth.is_authorized("/health", None, "k3y")
    assert not auth.is_authorized("/health/", None, "k3y")  # only the exact path is open


def test_nothing_in_a_request_names_a_file_the_server_opens(faulty):
    # the model is fixed at start-up: a request's "model" is a name to match,
    # never a path; paths and URLs in the prompt are text
    for model in ("/etc/passwd", "../../../etc/passwd", "file:///etc/passwd", "m/../../x.gguf"):
        r = httpx.post(faulty.url + "/v1/completions", json={"model": model, "prompt": "hi", "max_tokens": 1})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    for path in ("/../../etc/passwd", "/static/../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/index.html"):
        r = httpx.get(faulty.url + path)
        assert r.status_code == 404 and "root:" not in r.text
    r = httpx.post(faulty.url + "/v1/completions", timeout=60,
                   json={"prompt": "/etc/passwd", "max_tokens": 1, "chat_template": "/etc/passwd"})
    assert r.status_code in (200, 400) and "root:" not in r.text
