"""`stoker serve` started for a benchmark: a config written beside it, a free port, and a wait
until its runners are idle (the log's tail shown if it never gets there)."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(workdir: Path, config: dict[str, Any], *, name: str = "serve", runners: int = 1,
          timeout_s: float = 180) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``stoker serve`` with ``config`` (a free port added) and ``runners`` local
    runners; return the process and its URL once every runner is idle."""
    port = free_port()
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**config, "port": port}))
    log = workdir / f"{name}.log"
    proc = subprocess.Popen([sys.executable, "-m", "stoker.cli", "serve", "--config", str(path),
                             "--runners", str(runners)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            found = httpx.get(url + "/api/runners", timeout=5).json()["data"]
            if len([r for r in found if r["state"] == "idle"]) >= runners:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the {name} server did not come up:\n"
                     f"{log.read_text(errors='replace')[-3000:]}")


def wait_for(predicate: Any, timeout_s: float, what: str) -> Any:
    """Poll ``predicate`` (an HTTP error counts as not yet) until it returns something
    truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 90) -> None:
    """Ctrl-C the server (it drains its runners) and wait for it."""
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=timeout_s)
