"""HTTP/1.1 connections with deadlines, so that slow or idle sockets cannot pin the server.

uvicorn's h11 protocol waits for a request's head as long as the client likes (a new
connection that sends nothing, or a head sent a byte at a time, is held open for good) and
so does a body that stops arriving. Here every request must deliver its whole head within
``header_timeout_s`` of its first byte (or of the connection opening), and its whole body
within ``body_timeout_s`` of its head; past either the connection is closed. The ASGI app
sees a closed connection as a client that went away.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines on a request's head and body."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: object = None  # h11.IDLE (the head) or h11.SEND_BODY (the body)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection must send a request head in time."""
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        """Feed h11, then move the deadline to what the connection now waits for."""
        super().data_received(data)
        self._watch()

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing left to watch."""
        self._clear()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        """The next request on this connection gets its own deadlines (once it starts:
        until then the keep-alive timeout applies)."""
        super().on_response_complete()
        self._clear()

    def _watch(self) -> None:
        state = self.conn.their_state
        if state not in (h11.IDLE, h11.SEND_BODY):
            self._clear()  # the whole request is in
            return
        if state is self._waiting_for:
            return
        if state is h11.IDLE and self.conn.our_state is not h11.IDLE:
            return  # between a request and its response: nothing is owed yet
        self._clear()
        self._waiting_for = state
        limit = self.header_timeout_s if state is h11.IDLE else self.body_timeout_s
        self._deadline = self.loop.call_later(limit, self._too_slow)

    def _clear(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _too_slow(self) -> None:
        self._deadline = None
        what = "request head" if self._waiting_for is h11.IDLE else "request body"
        self.logger.info("closing a connection whose %s did not arrive in time", what)
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(*, header_timeout_s: float, body_timeout_s: float
                     ) -> type[GuardedH11Protocol]:
    """The protocol class for uvicorn's ``http=`` with these deadlines."""
    return type("GuardedH11", (GuardedH11Protocol,),
                {"header_timeout_s": header_timeout_s, "body_timeout_s": body_timeout_s})
