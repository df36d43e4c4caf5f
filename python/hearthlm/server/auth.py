"""The API key: with --api-key, every route but /health wants it.

Programs send it as OpenAI's clients do (``Authorization: Bearer KEY``). A
browser cannot add a header when it opens the chat page, so the key is also
taken as the password of HTTP Basic authentication (any user name): the 401
asks for it, the browser prompts once and then sends it with the page's own
requests too. Keys are compared in constant time, so response timing does not
tell an attacker how much of a guess was right."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Optional

OPEN_PATHS = frozenset({"/health"})  # load balancers probe it without credentials
CHALLENGE = 'Basic realm="hearth-server", charset="UTF-8"'


def presented_key(authorization: str) -> Optional[bytes]:
    """The key an Authorization header carries (Bearer, or Basic's password)."""
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip().encode()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        _, colon, password = decoded.partition(b":")
        return password if colon else None
    return None


def is_authorized(path: str, authorization: Optional[str], api_key: Optional[str]) -> bool:
    if not api_key or path in OPEN_PATHS:
        return True
    key = presented_key(authorization or "")
    # compare_digest's time depends on the lengths only, not on where bytes differ
    return key is not None and hmac.compare_digest(key, api_key.encode())
