"""SQLite plumbing shared by the embedded store: one connection in WAL mode with
``synchronous=FULL``, serialised by a lock, named queries, and versioned migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from stoker.store.queries import load_migrations, load_queries


class ArrivalOrderLock:
    """A reentrant lock granted in the order it was asked for.

    The write connection's lock: a big job is written a page per transaction, and Python's
    own lock lets the thread that just released it take it straight back (it still holds the
    GIL), so an online submission could wait out several pages in a row. Here it waits for
    one at most."""

    def __init__(self) -> None:
        self._changed = threading.Condition(threading.Lock())
        self._asking: deque[int] = deque()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> ArrivalOrderLock:
        me = threading.get_ident()
        with self._changed:
            if self._owner == me:
                self._depth += 1
                return self
            self._asking.append(me)
            while self._owner is not None or self._asking[0] != me:
                self._changed.wait()
            self._asking.popleft()
            self._owner, self._depth = me, 1
        return self

    @property
    def waiting(self) -> int:
        """How many threads wait for the lock now."""
        with self._changed:
            return len(self._asking)

    def __exit__(self, *_: object) -> None:
        with self._changed:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._changed.notify_all()


class SQLiteBase:
    """The connection, its transactions and the named queries."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._lock = ArrivalOrderLock()
        self._q = load_queries()
        self.migrate()
        # Reads go through a connection of their own: in WAL mode they see the last commit
        # without waiting for a write in progress (a 100,000-request job takes seconds to
        # insert, and health checks, job status and lease planning read meanwhile).
        self._reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._reader.execute("PRAGMA busy_timeout=10000")
        self._read_lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------

    def migrate(self) -> None:
        """Apply the migrations not applied yet, each in its own transaction."""
        with self._lock:
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {v for (v,) in self._conn.execute("SELECT version FROM schema_migrations")}
            for migration in load_migrations("sqlite"):
                if migration.version in done:
                    continue
                self._conn.executescript(
                    "BEGIN IMMEDIATE;\n"
                    f"{migration.sql}\n"
                    "INSERT INTO schema_migrations (version, name, applied_at) "
                    f"VALUES ({migration.version}, '{migration.name}', datetime('now'));\n"
                    "COMMIT;"
                )

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        # One connection, synchronous=FULL: every commit is flushed, ``durable`` or not.
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _all(self, query: str, /, **params: Any) -> list[Any]:
        with self._read_lock:
            return self._reader.execute(self._q[query], params).fetchall()

    def _one(self, query: str, /, **params: Any) -> Any:
        with self._read_lock:
            return self._reader.execute(self._q[query], params).fetchone()

    def _x(self, conn: sqlite3.Connection, query: str, /, **params: Any) -> sqlite3.Cursor:
        return conn.execute(self._q[query], params)

    def _xmany(self, conn: sqlite3.Connection, query: str,
               rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        return conn.executemany(self._q[query], rows).rowcount

    def close(self) -> None:
        """Close the connection."""
        with self._read_lock:
            self._reader.close()
        with self._lock:
            self._conn.close()
