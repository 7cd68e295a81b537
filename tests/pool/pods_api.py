"""A stand-in for the Kubernetes API's pods endpoints, over real HTTP, for the official client.

No cluster can be reached from our machines (say so, not hide it): this server keeps pods in
memory and answers create, list (with a label selector) and delete as the API server does, in
the shape the client deserializes, and records every call so tests can check what was asked.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class PodsApi:
    """The pods this fake cluster holds, and every call made to it."""

    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set_phase(self, name: str, phase: str, *, reason: str | None = None,
                  message: str | None = None) -> None:
        """What the kubelet would report: the pod is running, or its runner exited (and
        why, for a failed pod)."""
        status = {"phase": phase, "reason": reason, "message": message}
        with self.lock:
            self.pods[name]["status"] = {k: v for k, v in status.items() if v is not None}


def _matches(pod: dict[str, Any], selector: str) -> bool:
    labels = pod["metadata"].get("labels", {})
    pairs = [part.split("=", 1) for part in selector.split(",") if part]
    return all(labels.get(k) == v for k, v in pairs)


def _handler(state: PodsApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _parts(self) -> tuple[list[str], dict[str, list[str]]]:
            url = urlparse(self.path)
            return url.path.strip("/").split("/"), parse_qs(url.query)

        def do_POST(self) -> None:
            parts, _ = self._parts()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.calls.append(("POST", self.path, body))
            pod = {**body, "metadata": {**body["metadata"], "namespace": parts[3],
                                        "creationTimestamp": datetime.now(UTC).isoformat()},
                   "status": {"phase": "Pending"}}
            with state.lock:
                if pod["metadata"]["name"] in state.pods:
                    self._send(409, {"kind": "Status", "reason": "AlreadyExists"})
                    return
                state.pods[pod["metadata"]["name"]] = pod
            self._send(201, pod)

        def do_GET(self) -> None:
            _, query = self._parts()
            state.calls.append(("GET", self.path, None))
            selector = query.get("labelSelector", [""])[0]
            with state.lock:
                items = [p for p in state.pods.values() if _matches(p, selector)]
            self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {},
                             "items": items})

        def do_DELETE(self) -> None:
            parts, _ = self._parts()
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            state.calls.append(("DELETE", self.path, body))
            with state.lock:
                pod = state.pods.pop(parts[5], None)
            if pod is None:
                self._send(404, {"kind": "Status", "reason": "NotFound"})
            else:
                self._send(200, pod)

    return Handler


@contextmanager
def pods_api_server() -> Iterator[tuple[str, PodsApi]]:
    """A running stand-in on a free port: its URL and its state."""
    state = PodsApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
