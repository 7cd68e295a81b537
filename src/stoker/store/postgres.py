"""The shared store: PostgreSQL, for several API replicas and many runners.

Leases take rows with ``FOR UPDATE SKIP LOCKED``, so replicas never hand one request to two
runners and never wait on each other's picks. Migrations run once, under an advisory lock,
however many replicas start together. Replicas hear each other through LISTEN/NOTIFY: work
arriving for a model wakes lease calls held open on every replica.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from stoker.core.batching import Pick
from stoker.core.model import Lease, Request
from stoker.errors import Unavailable
from stoker.store import rows
from stoker.store.ids import new_id
from stoker.store.protocol import LendCheck, ResultRow
from stoker.store.queries import load_migrations, load_queries
from stoker.store.sql import SQLStore
from stoker.store.sql_base import PROGRESS, STREAM, WORK

log = logging.getLogger("stoker.store")
#: PostgreSQL refuses notification payloads of 8000 bytes or more.
_MAX_NOTIFY_BYTES = 7900

# Any constant both old and new replicas agree on; it names the migration lock.
MIGRATION_LOCK = 0x5702_4E52


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return url.startswith(("postgresql://", "postgres://"))


class PostgresStore(SQLStore):
    """:class:`stoker.store.Store` on PostgreSQL through a psycopg connection pool."""

    integrity_errors = (psycopg.errors.UniqueViolation,)

    def __init__(self, url: str, *, min_size: int = 2, max_size: int = 8) -> None:
        self._url = url
        self._q = load_queries("postgresql")
        # No check on every checkout (it costs a round trip per operation): a connection that
        # turns out broken fails its operation, the pool discards it on return, reads are
        # retried once on another connection, and writes answer "unavailable; retry".
        self._pool = ConnectionPool(url, min_size=min_size, max_size=max_size,
                                    kwargs={"autocommit": True}, open=False, name="stoker")
        # Connections whose commits return before they are flushed, for what may be lost in a
        # crash at no cost but re-running work (lease grants, renewals, heartbeats), set once
        # per connection rather than by a SET LOCAL round trip per transaction; reads use them
        # too. So the lease path never waits behind submissions and completions, which hold a
        # connection of the other pool until their commit is on disk.
        self._quick = ConnectionPool(url, min_size=1, max_size=max_size,
                                     kwargs={"autocommit": True,
                                             "options": "-c synchronous_commit=off"},
                                     open=False, name="stoker-quick")
        try:
            self._pool.open(wait=True, timeout=30)
            self._quick.open(wait=True, timeout=30)
        except psycopg.pool.PoolTimeout as exc:  # type: ignore[attr-defined]
            self.close()
            raise Unavailable(f"cannot connect to PostgreSQL: {_safe(exc)}") from None
        self.migrate()

    def migrate(self) -> None:
        """Apply missing migrations; concurrent replicas wait on one advisory lock."""
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY "
                         "KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
            done = {v for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            for migration in load_migrations("postgresql"):
                if migration.version not in done:
                    conn.execute(migration.sql.encode())
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                 (migration.version, migration.name))

    @contextmanager
    def _tx(self, *, durable: bool = True) -> Iterator[psycopg.Connection[Any]]:
        pool = self._pool if durable else self._quick
        try:
            with pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.OperationalError as exc:
            # A lost connection, a restart, a deadlock: nothing was committed; try again.
            raise Unavailable(f"the database is unavailable ({_safe(exc)}); retry") from None

    def _x(self, conn: psycopg.Connection[Any], query: str, /, **params: Any) -> Any:
        return conn.execute(self._q[query], params)

    def _xmany(self, conn: psycopg.Connection[Any], query: str,
               rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        with conn.cursor() as cur:
            cur.executemany(self._q[query], rows)
            return cur.rowcount

    def _read(self, query: str, params: dict[str, Any], *, many: bool) -> Any:
        # A read changes nothing, so one that met a connection the server had closed (a
        # restart, pg_terminate_backend) is simply asked again on a fresh connection.
        for last in (False, True):
            conn: psycopg.Connection[Any] | None = None
            try:
                with self._quick.connection() as conn:
                    cur = conn.execute(self._q[query], params)
                    return cur.fetchall() if many else cur.fetchone()
            except psycopg.OperationalError as exc:
                if last or conn is None or not conn.broken:
                    raise Unavailable(f"the database is unavailable ({_safe(exc)}); retry"
                                      ) from None
        raise AssertionError("unreachable")

    def _all(self, query: str, /, **params: Any) -> list[Any]:
        return self._read(query, params, many=True)  # type: ignore[no-any-return]

    def _one(self, query: str, /, **params: Any) -> Any:
        return self._read(query, params, many=False)

    def lease_batch(
        self, runner_id: str, model: str, picks: Sequence[Pick], *, ttl_s: float, now: float,
        lend_check: LendCheck | None = None,
    ) -> tuple[Lease, list[Request]] | None:
        """Lease the oldest queued requests of each pick in one statement (one round trip);
        a grant that lends the runner first takes the model's lending lock and asks
        ``lend_check`` in the same transaction, so replicas lend one at a time."""
        lease_id = new_id("lease")
        params = {"lease_id": lease_id, "runner_id": runner_id, "model": model, "now": now,
                  "expires_at": now + ttl_s, "tiers": [p.tier for p in picks],
                  "teams": [p.team for p in picks], "counts": [p.count for p in picks]}
        if lend_check is not None:
            with self._tx(durable=False) as conn:
                if not self._lend_allowed(conn, model, lend_check):
                    return None
                leased = [rows.request_from(r)
                          for r in conn.execute(self._q["lease_batch"], params).fetchall()]
        else:
            try:
                with self._quick.connection() as conn:
                    leased = [rows.request_from(r) for r in
                              conn.execute(self._q["lease_batch"], params).fetchall()]
            except psycopg.OperationalError as exc:
                raise Unavailable(f"the database is unavailable ({_safe(exc)}); "
                                  "retry") from None
        if not leased:
            return None
        lease = Lease(lease_id, runner_id, model, now, now + ttl_s, tuple(r.id for r in leased))
        return lease, leased

    def iter_job_results(self, job_id: str, *, page: int = 2000) -> Iterator[ResultRow]:
        """The job's rows through a server-side cursor: one query, sorted once, fetched a
        page at a time (keyset paging would need an index on every request row that the
        write path does not pay for, migration 0007)."""
        self.get_job(job_id)
        with self._quick.connection() as conn, conn.transaction(), \
                conn.cursor(name=new_id("results")) as cursor:
            cursor.itersize = page
            cursor.execute(self._q["job_results"], {"job_id": job_id})
            for row in cursor:
                yield rows.result_from(row)

    def _pipeline(self, conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
        """Send the block's statements together, reading their answers at its end."""
        return conn.pipeline()

    def _lock_lending(self, conn: Any, model: str) -> None:
        """Every lending grant of ``model``, from any replica, waits here for the one before
        it to commit (a transaction-scoped advisory lock)."""
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", ("stoker-lending:" + model,))

    def _runner_done_with_batch(self, conn: Any, runner_id: str, now: float) -> None:
        """A busy runner with no open lease left is idle again (one statement)."""
        self._x(conn, "runner_done_with_batch", id=runner_id, now=now)

    def _announce(self, conn: psycopg.Connection[Any], channel: str, payload: str) -> None:
        conn.execute("SELECT pg_notify(%s, %s)", (channel, payload))

    def announce_partials(self, texts: dict[str, str]) -> None:
        """NOTIFY the other replicas of streamed texts (one statement). A text too big for a
        notification is left out: the client gets it with the final result."""
        payloads = [p for p in (f"{rid}\t{text}" for rid, text in texts.items())
                    if len(p.encode()) < _MAX_NOTIFY_BYTES]
        if not payloads:
            return
        try:
            with self._quick.connection() as conn:
                conn.execute("SELECT pg_notify(%s, p) FROM unnest(CAST(%s AS TEXT[])) AS p",
                             (STREAM, payloads))
        except psycopg.OperationalError as exc:
            log.warning("could not announce streamed text (%s)", _safe(exc))

    def subscribe(self, on_news: Callable[[str, str], None]) -> Callable[[], None]:
        """Hear other replicas' announcements on a dedicated connection (reconnecting)."""
        stop = threading.Event()
        thread = threading.Thread(target=self._listen, args=(on_news, stop),
                                  name="pg-listen", daemon=True)
        thread.start()

        def unsubscribe() -> None:
            stop.set()
            thread.join(timeout=5)

        return unsubscribe

    def _listen(self, on_news: Callable[[str, str], None], stop: threading.Event) -> None:
        delay = 0.1
        while not stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {WORK}")
                    conn.execute(f"LISTEN {PROGRESS}")
                    conn.execute(f"LISTEN {STREAM}")
                    on_news(WORK, "*")  # anything missed while disconnected
                    delay = 0.1
                    while not stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            on_news(note.channel, note.payload)
            except psycopg.Error as exc:
                log.warning("lost the LISTEN connection (%s); reconnecting", _safe(exc))
                stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def close(self) -> None:
        """Close the pools."""
        self._pool.close()
        self._quick.close()


def _safe(exc: BaseException) -> str:
    """An error's first line, which psycopg keeps free of the connection password."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
