"""Real processes on free ports: `stoker serve` with its local runner pool."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

#: The operator token of e2e servers that have teams.
E2E_OPERATOR_TOKEN = "e2e-operator-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, what: str,
               every_s: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(every_s)


@dataclass
class Server:
    """A running `stoker serve` and what the test needs to reach it."""

    data_dir: Path
    config: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    runner_pids: set[int] = field(default_factory=set)
    #: Sent on operator routes (the runner list), which need it once teams exist.
    operator_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, runners: int, env: dict[str, str] | None = None,
              expect: int | None = None) -> None:
        """Start serve with ``runners`` local runners of the default model; wait until
        ``expect`` runners in all (default: ``runners``) are idle."""
        seen = {r["id"] for r in self._runners_or_empty()}
        log = (self.data_dir / "serve.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stoker.cli", "serve", "--config", str(self.config),
             "--runners", str(runners)],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.data_dir,
            env={**os.environ, **(env or {})},
        )
        # Rows left by an earlier, killed server do not count: only this start's runners.
        want = runners if expect is None else expect
        wait_until(lambda: len([r for r in self.idle_runners() if r["id"] not in seen])
                   >= want, timeout_s=120, what=f"{want} idle runners", every_s=0.2)

    def _runners_or_empty(self) -> list[dict[str, Any]]:
        try:
            return self.runners()
        except (httpx.HTTPError, OSError):
            return []

    def get(self, path: str) -> Any:
        return httpx.get(self.url + path, timeout=10).json()

    def operator_headers(self) -> dict[str, str]:
        """What an operator route needs from this server."""
        if self.operator_token is None:
            return {}
        return {"Authorization": f"Bearer {self.operator_token}"}

    def runners(self) -> list[dict[str, Any]]:
        """The live runners, as the operator sees them."""
        r = httpx.get(self.url + "/api/runners", headers=self.operator_headers(), timeout=10)
        return list(r.json()["data"])

    def idle_runners(self) -> list[dict[str, Any]]:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"serve exited early; see {self.data_dir / 'serve.log'}")
        try:
            runners = self.runners()
        except httpx.HTTPError:
            return []
        self.runner_pids.update(r["pid"] for r in runners)
        return [r for r in runners if r["state"] == "idle"]

    def submit(self, requests: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        r = httpx.post(self.url + "/api/jobs", json={"requests": requests, **extra}, timeout=30)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def wait_job(self, job_id: str, timeout_s: float = 180) -> dict[str, Any]:
        return dict(wait_until(
            lambda: (j := self.get(f"/api/jobs/{job_id}"))["status"] in ("completed",
                                                                         "cancelled") and j,
            timeout_s=timeout_s, what=f"job {job_id} to finish", every_s=0.1))

    def results(self, job_id: str) -> list[dict[str, Any]]:
        text = httpx.get(f"{self.url}/api/jobs/{job_id}/results", timeout=30).text
        return [json.loads(x) for x in text.splitlines()]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.data_dir / "stoker.db")

    def interrupt(self, timeout_s: float = 90) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)

    def kill_everything(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.runner_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def smollm2_and_tiny_server(root: Path, smollm2: Path, tiny_model_dir: Path,
                            **settings: Any) -> Server:
    """Configure (not start) a server over ``root`` serving SmolLM2 (the default model, one
    runner) and the tiny model (one runner), with ``settings`` added; start it with
    ``start(runners=1, expect=2)``."""
    port = free_port()
    config = {"port": port, "data_dir": str(root), "default_model": "smollm2",
              "models": {"smollm2": {"path": str(smollm2), "max_new_tokens": 64},
                         "tiny-llama": {"path": str(tiny_model_dir), "runners": 1}},
              "operator_token": E2E_OPERATOR_TOKEN, **settings}
    (root / "stoker.yaml").write_text(yaml.safe_dump(config))
    return Server(root, root / "stoker.yaml", port, operator_token=E2E_OPERATOR_TOKEN)


@pytest.fixture
def make_server(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Callable[..., Server]]:
    """Configure (not start) a server over a fresh data dir with fast lease timings."""
    made: list[Server] = []

    def factory(**settings: Any) -> Server:
        port = free_port()
        data_dir = tmp_path / f"srv{len(made)}"
        data_dir.mkdir()
        config = {
            "port": port,
            "data_dir": str(data_dir),
            "models": {"tiny-llama": {"path": str(tiny_model_dir)}},
            "batching": {"max_batch_size": 8, "max_wait_ms": 50},
            "leases": {"ttl_s": 2.0, "runner_timeout_s": 4.0, "long_poll_s": 2.0,
                       "max_attempts": 3},
            **settings,
        }
        if "teams" in config:
            config.setdefault("operator_token", E2E_OPERATOR_TOKEN)
        path = data_dir / "stoker.yaml"
        path.write_text(yaml.safe_dump(config))
        server = Server(data_dir, path, port, operator_token=config.get("operator_token"))
        made.append(server)
        return server

    yield factory
    for server in made:
        server.kill_everything()


def prompts(n: int, *, max_tokens: int = 16) -> list[dict[str, Any]]:
    return [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "default", "max_tokens": max_tokens, "temperature": 0,
                      "messages": [{"role": "user", "content": f"Question number {i}?"}]}}
            for i in range(n)]
