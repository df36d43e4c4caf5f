"""A deadline for reading each request (nginx's client_header_timeout and
client_body_timeout in one).

uvicorn waits forever for a request that arrives a byte at a time, or for a
body shorter than its Content-Length: each such connection holds a socket,
and a client that opens enough of them (slowloris) keeps everyone else out.
Here a request must arrive whole, headers and body, within `read_timeout`
seconds of its first byte (of the connection, for the first request), or the
server closes the connection. Idle keep-alive connections keep uvicorn's own
short timeout, and a response that streams for minutes is not affected: its
request was read long before.
"""

from __future__ import annotations

import asyncio
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

# the client's states in which part of a request is still to come
_READING = (h11.IDLE, h11.SEND_BODY)


def read_timeout_protocol(read_timeout: float) -> type:
    """uvicorn's h11 protocol with the deadline, for uvicorn.Config(http=...)."""
    if not read_timeout > 0:
        raise ValueError(f"the read timeout must be > 0 seconds, got {read_timeout}")

    class ReadTimeoutH11Protocol(H11Protocol):
        _read_timer: Optional[asyncio.TimerHandle] = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._read_timer is None and self.conn.their_state is h11.IDLE:
                self._arm()  # the first byte of the next request on a kept-alive connection
            super().data_received(data)
            if self.conn.their_state not in _READING:  # the whole request is in (or the connection is done)
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            # a pipelined request that came with the last one's bytes, in part
            if self._read_timer is None and self.conn.their_state in _READING and self.conn.trailing_data[0]:
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._read_timer = self.loop.call_later(read_timeout, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.conn.their_state in _READING and not self.transport.is_closing():
                self.logger.warning("closing a connection whose request did not arrive within %g s", read_timeout)
                self.transport.close()

    return ReadTimeoutH11Protocol
