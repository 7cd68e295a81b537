"""What every SQL part of the store stands on: a dialect's connection and named queries.

Subclasses provide transactions (``_tx``) and statements by query name (``_x``, ``_xmany``,
``_all``, ``_one``), and an announcement hook that lets other API replicas know that work
arrived or jobs moved.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

#: Announcement channels: work arrived for a model; jobs moved.
WORK = "stoker_work"
PROGRESS = "stoker_progress"
#: A streamed request's text so far: ``request_id<TAB>text``.
STREAM = "stoker_stream"
LEASES_EXPIRED = "leases_expired"
CACHE_HITS = "cache_hits"


class SQLBase:
    """The plumbing a dialect implements, and the few steps every operation group shares."""

    _q: dict[str, str]
    #: Errors a unique index raises in this dialect.
    integrity_errors: tuple[type[Exception], ...] = ()

    def _tx(self, *, durable: bool = True) -> AbstractContextManager[Any]:
        """A transaction. ``durable=False`` may return before its commit is flushed, for
        writes whose loss in a database crash only means work runs again (lease grants,
        heartbeats), never for accepted jobs or results."""
        raise NotImplementedError

    def _x(self, conn: Any, query: str, /, **params: Any) -> Any:
        raise NotImplementedError

    def _pipeline(self, conn: Any) -> AbstractContextManager[Any]:
        """A block whose statements may be sent together without waiting for each answer
        (PostgreSQL's pipeline mode); their cursors' counts are read only after it. In
        process (SQLite) there is no round trip to save."""
        return nullcontext()

    def _xmany(self, conn: Any, query: str, rows: Sequence[dict[str, Any]]) -> int:
        """Run ``query`` once per row; returns the rows changed in all."""
        raise NotImplementedError

    def _all(self, query: str, /, **params: Any) -> list[Any]:
        raise NotImplementedError

    def _one(self, query: str, /, **params: Any) -> Any:
        raise NotImplementedError

    def _announce(self, conn: Any, channel: str, payload: str) -> None:
        """Tell other replicas (on commit) that ``channel`` has news; a no-op by default."""

    def announce_partials(self, texts: dict[str, str]) -> None:
        """Tell other replicas the text streamed requests have so far; a single-process
        store has no one to tell."""

    def subscribe(self, on_news: Callable[[str, str], None]) -> Callable[[], None]:
        """Call ``on_news(channel, payload)`` for other replicas' announcements; returns a
        function that stops it. A single-process store has nothing to hear."""
        return lambda: None

    def _finish_jobs(self, conn: Any, job_ids: set[str], now: float) -> None:
        """Stamp ``finished_at`` on each job with no queued or leased request left."""
        for job_id in job_ids:
            (open_count,) = self._x(conn, "job_open_requests", job_id=job_id).fetchone()
            if open_count == 0:
                self._x(conn, "mark_job_finished", job_id=job_id, now=now)

    def _cancel_job_in(self, conn: Any, job_id: str, now: float) -> None:
        """Cancel a job's queued requests inside ``conn``'s transaction."""
        self._x(conn, "cancel_job", job_id=job_id, now=now)
        self._x(conn, "cancel_queued_requests", job_id=job_id, now=now)
        self._finish_jobs(conn, {job_id}, now)
        self._announce(conn, PROGRESS, "")

    def _release_lease(self, conn: Any, lease_id: str, now: float,
                       outcome: str) -> None:
        """Requeue a lease's requests (failing those out of attempts) and close it."""
        jobs = {j for (j,) in self._x(conn, "jobs_of_lease", lease_id=lease_id).fetchall()}
        error = f"lease {outcome}: the runner did not report in time"
        self._x(conn, "put_back_leased", lease_id=lease_id, errors="{}", error=error,
                now=now).fetchall()
        self._x(conn, "release_lease", id=lease_id, now=now, outcome=outcome)
        self._x(conn, "bump_counter", name=LEASES_EXPIRED, by=1)
        self._finish_jobs(conn, jobs, now)
