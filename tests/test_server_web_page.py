"""The chat page at / in headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright): type a question, see the answer stream in, stop it.
A screenshot is saved as a test artefact (HEARTH_TEST_ARTIFACTS, default
build/test-artifacts/)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time

import pytest

pytest.importorskip("fastapi", reason="the server needs its extra (pip install '.[server]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install '.[test]')")
httpx = pytest.importorskip("httpx")

from helpers.server_process import ServerProcess  # noqa: E402
from test_server import wait_idle  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (Debian: apt-get install chromium)")

ARTIFACTS = pathlib.Path(os.environ.get("HEARTH_TEST_ARTIFACTS",
                                        pathlib.Path(__file__).resolve().parent.parent / "build" / "test-artifacts"))


@pytest.fixture(scope="module")
def server(smollm2_gguf):
    s = ServerProcess(["-m", str(smollm2_gguf), "-t", "1", "-c", "2048"])
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def browser(server):
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(server, browser):
    # bypass_csp: Playwright's own probes (wait_for_function) evaluate
    # strings, which the page's policy forbids; the rendering tests below
    # must hold without the policy's help anyway
    pg = browser.new_context(viewport={"width": 1100, "height": 760}, bypass_csp=True).new_page()
    pg.goto(server.url + "/")
    yield pg


def test_a_question_streams_an_answer_that_the_stop_button_stops(server, page):
    page.wait_for_function("document.getElementById('model').textContent.includes('SmolLM2')")
    page.fill("#temperature", "0")  # greedy: this question's answer runs to max_tokens
    page.fill("#max_tokens", "1500")
    page.fill("#prompt", "Write a long story about a dragon who learns to bake bread.")
    page.click("#send")
    answer = page.locator(".msg.assistant .body").last
    page.wait_for_function(
        "[...document.querySelectorAll('.msg.assistant .body')].pop().textContent.length > 200", timeout=60000)
    assert page.locator(".msg.user .body").last.text_content().startswith("Write a long story")
    assert page.is_enabled("#stop") and not page.is_enabled("#send")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat-page.png"))
    page.click("#stop")
    page.wait_for_function("[...document.querySelectorAll('.msg.assistant')].pop().dataset.state === 'stopped'")
    stopped_at = answer.text_content()
    assert "Once upon a time" in stopped_at
    wait_idle(server)  # the server dropped the request and its KV blocks
    time.sleep(0.5)
    assert answer.text_content() == stopped_at  # nothing more arrives
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    assert "stopped" in page.locator(".msg.assistant .stats").last.text_content()


def test_model_output_is_escaped_and_markdown_rendered(page):
    html = page.evaluate("(src) => renderMarkdown(src)",
                         "**bold** <img src=x onerror=alert(1)>\n\n- one\n- `two<b>`\n\n```python\nprint('<hi>')\n```")
    assert "<strong>bold</strong>" in html and "<li>one</li>" in html
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<code>two&lt;b&gt;</code>" in html
    assert '<pre><code data-lang="python">print(&#39;&lt;hi&gt;&#39;)\n</code></pre>' in html


def test_new_chat_clears_the_conversation(page):
    assert page.locator(".msg").count() > 0
    page.click("#new-chat")
    assert page.locator(".msg").count() == 0


HOSTILE_ANSWER = ('Here you go: <script>window.__ran = "script"</script> '
                  '<img src=x onerror="window.__ran = \'img\'"> **bold** '
                  '<a href="javascript:window.__ran=\'link\'">link</a> '
                  '<svg onload="window.__ran = \'svg\'"></svg> ``` <script>window.__ran = "fence"</script>')


def _hostile_stream(route):
    # an answer as the server streams it, split mid-tag, the way tokens arrive
    pieces = [HOSTILE_ANSWER[i:i + 7] for i in range(0, len(HOSTILE_ANSWER), 7)]
    events = [{"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
               "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    events.append({"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    body = "".join("data: " + json.dumps(e) + "\n\n" for e in events) + "data: [DONE]\n\n"
    route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)


def test_an_answer_with_script_and_onerror_runs_nothing_in_chromium(server, page):
    # the page's renderer gets a model answer full of markup: it must show as
    # text, and nothing in it may run (no script, no handler, no dialog)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route("**/v1/chat/completions", _hostile_stream)
    try:
        page.click("#new-chat")
        page.fill("#prompt", "Say something with HTML in it.")
        page.click("#send")
        page.wait_for_function("[...document.querySelectorAll('.msg.assistant')].pop().dataset.state === 'done'")
        page.wait_for_timeout(300)  # let an image's error event fire, were there one
    finally:
        page.unroute("**/v1/chat/completions")
    body = page.locator(".msg.assistant .body").last
    assert page.evaluate("window.__ran") is None and dialogs == []
    assert body.locator("script, img, svg, a[href^='javascript']").count() == 0
    text = body.text_content()
    assert "<script>window.__ran" in text and "<img src=x onerror=" in text  # shown, as text


def test_the_page_works_under_its_content_security_policy(server, browser):
    r = httpx.get(server.url + "/")
    policy = r.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'sha256-" in policy and "unsafe-inline" not in policy
    assert r.headers["x-content-type-options"] == "nosniff"
    # in a browser that enforces it, the page's own script still runs (its hash is allowed) and an
    # inline handler added to the page does not
    violations = []
    pg = browser.new_page()
    pg.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    pg.goto(server.url + "/")
    deadline = time.monotonic() + 30
    while "SmolLM2" not in (pg.text_content("#model") or ""):
        assert time.monotonic() < deadline, pg.text_content("#model")
        time.sleep(0.1)
    assert violations == []
    pg.locator("#log").evaluate("(el) => { el.insertAdjacentHTML('beforeend', "
                                "'<img src=x onerror=\"document.title=1\">'); }")
    pg.wait_for_timeout(300)
    assert pg.title() != "1" and any("inline event handler" in v or "script-src" in v for v in violations)
    pg.close()
