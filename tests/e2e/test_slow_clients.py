"""Idle, slow and stalled connections are cut after their deadlines, against `stoker serve`,
while the server keeps answering everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import httpx

from tests.e2e.conftest import Server, wait_until


def _closed(sock: socket.socket, *, trickle: bytes = b"") -> bool:
    """Whether the server closed ``sock``; sends ``trickle`` first, as a slow client would."""
    try:
        if trickle:
            sock.sendall(trickle)
        sock.settimeout(0.05)
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:  # reset or broken pipe: closed
        return True


def test_idle_slow_and_stalled_connections_are_cut(make_server: Callable[..., Server]) -> None:
    server = make_server(limits={"header_timeout_s": 1.0, "body_timeout_s": 1.5})
    server.start(runners=0)
    wait_until(lambda: _healthy(server), timeout_s=60, what="the server to answer")
    started = time.monotonic()
    idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(100)]
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.sendall(b"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                    b"\r\nContent-Length: 1000\r\n\r\n{\"requests\": [")
    # With a hundred sockets held open, others are still served at once.
    assert _healthy(server)
    wait_until(lambda: all(_closed(s) for s in idle), timeout_s=15, what="idle sockets cut")
    wait_until(lambda: _closed(slow, trickle=b"X"), timeout_s=15, what="a slow head cut")
    wait_until(lambda: _closed(stalled), timeout_s=15, what="a stalled body cut")
    # Cut by the deadlines, not by anything slower.
    assert time.monotonic() - started < 10
    for s in (*idle, slow, stalled):
        s.close()
    assert _healthy(server)


def test_a_keep_alive_connection_serves_request_after_request(
        make_server: Callable[..., Server]) -> None:
    server = make_server(limits={"header_timeout_s": 1.0, "body_timeout_s": 1.0})
    server.start(runners=0)
    wait_until(lambda: _healthy(server), timeout_s=60, what="the server to answer")
    with httpx.Client(base_url=server.url) as client:
        for _ in range(3):
            assert client.get("/healthz").json() == {"status": "ok"}
            time.sleep(0.6)  # idle between requests, under the keep-alive time


def _healthy(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
