"""What the pool's tests share: a clock the test moves, and a real SQLite store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stoker.store.sqlite import SQLiteStore


@dataclass
class ManualClock:
    """Time that moves only when the test says."""

    at: float = 1000.0

    def now(self) -> float:
        return self.at


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "stoker.db")
    yield s
    s.close()
