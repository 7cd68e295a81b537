"""What is particular to the embedded SQLite store: durability settings and migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from stoker.store import NewJob, NewRequest
from stoker.store.queries import load_migrations
from stoker.store.sqlite import SQLiteStore


def test_wal_with_full_sync(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    conn = store._conn  # the store's own connection carries the per-connection pragma
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_migrations_apply_once_and_data_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SQLiteStore(path)
    job = store.submit_job(
        NewJob(team="t", tier="batch", priority=40, model="m", max_attempts=3,
               requests=[NewRequest("a", "/v1/completions", {"prompt": "x"})]),
        now=1.0,
    ).job
    store.close()
    reopened = SQLiteStore(path)
    assert reopened.get_job(job.id).counts.queued == 1
    reopened.close()
    versions = sqlite3.connect(path).execute("SELECT version FROM schema_migrations").fetchall()
    assert sorted(versions) == [(m.version,) for m in load_migrations("sqlite")]
