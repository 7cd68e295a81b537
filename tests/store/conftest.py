"""One store contract suite, run against every implementation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from stoker.store import Store
from stoker.store.sqlite import SQLiteStore


def _sqlite(tmp_path: Path) -> Iterator[Store]:
    store = SQLiteStore(tmp_path / "stoker.db")
    yield store
    store.close()


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh, empty store of each kind."""
    factories = {"sqlite": _sqlite}
    yield from factories[request.param](tmp_path)
