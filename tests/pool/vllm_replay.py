"""Replayed vLLM replicas: a local HTTP server that serves each replica's ``/metrics`` in
vLLM's Prometheus exposition (V1 engine names and labels), from a recorded sequence of frames,
and optionally forwards its OpenAI API (``/v1/...``) to a real OpenAI-compatible server.

vLLM cannot run on our CPU machines; serving its metrics from recordings is the one stand-in
the lending tests use. The model behind a forwarded ``/v1`` is real (a Stoker server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

RECORDINGS = Path(__file__).parent / "recordings"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


@dataclass(frozen=True)
class Frame:
    """One scrape's worth of a replica's scheduler state (per engine)."""

    running: tuple[float, ...]
    waiting: tuple[float, ...]
    kv_cache_usage: tuple[float, ...]


def load_recording(name: str) -> list[dict[str, Frame]]:
    """A recorded sequence: per step, each replica's frame."""
    raw = yaml.safe_load((RECORDINGS / name).read_text())
    return [{replica: Frame(tuple(v["running"]), tuple(v["waiting"]), tuple(v["kv"]))
             for replica, v in step.items()} for step in raw["steps"]]


def vllm_metrics_text(frame: Frame, *, model: str = MODEL) -> str:
    """A frame as a vLLM V1 server's /metrics shows it (scheduler gauges, KV cache, and the
    counters and histograms around them)."""
    lines = []

    def gauge(name: str, help_text: str, values: tuple[float, ...]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge"])
        lines.extend(f'{name}{{engine="{i}",model_name="{model}"}} {v}'
                     for i, v in enumerate(values))

    gauge("vllm:num_requests_running", "Number of requests in model execution batches.",
          frame.running)
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.",
          frame.waiting)
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.",
          frame.kv_cache_usage)
    lines += ["# HELP vllm:prompt_tokens_total Number of prefill tokens processed.",
              "# TYPE vllm:prompt_tokens_total counter",
              f'vllm:prompt_tokens_total{{engine="0",model_name="{model}"}} 123456.0',
              "# HELP vllm:time_to_first_token_seconds Histogram of time to first token in "
              "seconds.",
              "# TYPE vllm:time_to_first_token_seconds histogram"]
    for le, count in (("0.02", 10.0), ("0.1", 40.0), ("1.0", 55.0), ("+Inf", 56.0)):
        lines.append(f'vllm:time_to_first_token_seconds_bucket{{engine="0",le="{le}",'
                     f'model_name="{model}"}} {count}')
    lines += [f'vllm:time_to_first_token_seconds_count{{engine="0",model_name="{model}"}} 56.0',
              f'vllm:time_to_first_token_seconds_sum{{engine="0",model_name="{model}"}} 3.2']
    return "\n".join(lines) + "\n"


class Fleet:
    """The replayed replicas: the frame each serves now, and where ``/v1`` goes."""

    def __init__(self, url: str, steps: list[dict[str, Frame]], forward_to: str | None) -> None:
        self.url = url
        self.steps = steps
        self.forward_to = forward_to
        self.step = 0
        self._lock = threading.Lock()
        self.forwarded: dict[str, int] = {}

    def replica_url(self, replica: str) -> str:
        """A replica's base URL (its /metrics and /v1 are under it)."""
        return f"{self.url}/{replica}"

    def frame(self, replica: str) -> Frame | None:
        """What ``replica`` reports at the current step (None: it does not answer)."""
        return self.steps[self.step].get(replica)

    def count_forwarded(self, replica: str) -> None:
        """Note one API call forwarded for ``replica``."""
        with self._lock:
            self.forwarded[replica] = self.forwarded.get(replica, 0) + 1


def _handler(fleet: Fleet) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            replica, _, rest = self.path.strip("/").partition("/")
            frame = fleet.frame(replica)
            if rest != "metrics" or frame is None:
                self._send(404 if frame is not None else 503, b"", "text/plain")
                return
            self._send(200, vllm_metrics_text(frame).encode(), "text/plain; version=0.0.4")

        def do_POST(self) -> None:
            replica, _, rest = self.path.strip("/").partition("/")
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if fleet.forward_to is None or not rest.startswith("v1/"):
                self._send(404, b"", "text/plain")
                return
            fleet.count_forwarded(replica)
            answer = httpx.post(f"{fleet.forward_to}/{rest}", content=body, timeout=120,
                                headers={"Content-Type": "application/json"})
            self._send(answer.status_code, answer.content, "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    return Handler


@contextmanager
def replayed_fleet(steps: list[dict[str, Frame]], *,
                   forward_to: str | None = None) -> Iterator[Fleet]:
    """Serve the replicas of ``steps`` on 127.0.0.1 until the block ends."""
    fleet = Fleet("", steps, forward_to)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fleet))
    fleet.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fleet
    finally:
        server.shutdown()
        server.server_close()

