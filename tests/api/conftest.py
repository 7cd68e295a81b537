"""An app over a real SQLite store, driven in-process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.api.app import create_app
from stoker.clock import SystemClock
from stoker.settings import Settings, load_settings
from stoker.store.sqlite import SQLiteStore


def make_client(tmp_path: Path, **overrides: Any) -> Iterator[tuple[TestClient, SQLiteStore]]:
    settings: Settings = load_settings(data_dir=tmp_path, **overrides)
    store = SQLiteStore(settings.database_path)
    with TestClient(create_app(settings, store, SystemClock())) as client:
        yield client, store
    store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStore]]:
    yield from make_client(
        tmp_path,
        limits={"max_body_bytes": 64 * 1024},
        batching={"max_batch_size": 4, "max_wait_ms": 200},
    )


def line(custom_id: str, prompt: str = "hi", **body: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/completions",
            "body": {"model": "default", "prompt": prompt, **body}}
