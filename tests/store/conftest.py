"""One store contract suite, run against every implementation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stoker.store import Store
from stoker.store.sqlite import SQLiteStore
from tests.postgres import fresh_database


def _sqlite(tmp_path: Path) -> Iterator[Store]:
    store = SQLiteStore(tmp_path / "stoker.db")
    yield store
    store.close()


def _postgresql(_: Path) -> Iterator[Store]:
    from stoker.store.postgres import PostgresStore

    with fresh_database() as url:
        store = PostgresStore(url, min_size=1, max_size=4)
        yield store
        store.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind (PostgreSQL: a database of its own)."""
    factories = {"sqlite": _sqlite, "postgresql": _postgresql}
    yield from factories[request.param](tmp_path)
