"""The chat page's response headers: a Content-Security-Policy that lets
only the page's own inline script run (pinned by its hash) and lets it talk
only to this server. The page renders model output as text (its Markdown
renderer escapes everything first); the policy is the second wall, so that
even a rendering bug could not run a `<script>` or an `onerror=` handler that
a model was coaxed into writing."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Dict

_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.S)


def _hashes(html: str, tag: str) -> str:
    return " ".join("'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"
                    for t, body in _INLINE.findall(html) if t == tag)


def chat_page_headers(path: Path) -> Dict[str, str]:
    html = path.read_text(encoding="utf-8")
    policy = "; ".join([
        "default-src 'none'",
        f"script-src {_hashes(html, 'script')}",  # no other script, no inline handler
        f"style-src {_hashes(html, 'style')}",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ])
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}
