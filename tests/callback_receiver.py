"""A real HTTP server that takes completion callbacks, for tests: it answers each POST with the
next status of its script (then 200) and keeps what it was sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Delivery:
    """One POST the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """What the server got, and what it answers next."""

    def __init__(self, url: str, statuses: list[int]) -> None:
        self.url = url
        self._statuses = list(statuses)
        self._lock = threading.Lock()
        self._got: list[Delivery] = []

    def take(self, delivery: Delivery) -> int:
        """Keep a delivery; the status to answer it with."""
        with self._lock:
            self._got.append(delivery)
            return self._statuses.pop(0) if self._statuses else 200

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery so far, in order."""
        with self._lock:
            return list(self._got)


@contextmanager
def callback_receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1 (a free port) until the block ends."""
    holder: list[Receiver] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = holder[0].take(Delivery(self.path, dict(self.headers.items()), body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: pytest shows what the test asserts."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks/stoker",
                           statuses or []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()
