"""The chat page at / in headless Chromium (Debian's /usr/bin/chromium,
driven by Playwright): type a question, see the answer stream in, stop it.
A screenshot is saved as a test artefact (HEARTH_TEST_ARTIFACTS, default
build/test-artifacts/)."""

from __future__ import annotations

import os
import pathlib
import shutil
import time

import pytest

pytest.importorskip("fastapi", reason="the server needs its extra (pip install '.[server]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install '.[test]')")

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
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        pg = browser.new_page(viewport={"width": 1100, "height": 760})
        pg.goto(server.url + "/")
        yield pg
        browser.close()


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
