"""A real server for runner tests: the app under uvicorn in a thread, over SQLite."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from stoker.api.app import create_app
from stoker.clock import SystemClock
from stoker.settings import load_settings
from stoker.store.sqlite import SQLiteStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def live_server(data_dir: Path, tiny_model_dir: Path,
                **settings: Any) -> Iterator[tuple[str, SQLiteStore]]:
    """Serve the tiny model with ``settings``; its URL and its store while it runs."""
    port = free_port()
    loaded = load_settings(data_dir=data_dir, port=port,
                           models={"tiny-llama": {"path": str(tiny_model_dir)}}, **settings)
    store = SQLiteStore(loaded.database_path)
    server = uvicorn.Server(uvicorn.Config(create_app(loaded, store, SystemClock()),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started, "the server to start")
        yield f"http://127.0.0.1:{port}", store
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        store.close()
