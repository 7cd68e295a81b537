"""The completion-callback operations of the SQL stores."""

from __future__ import annotations

from stoker.store.protocol_callbacks import DueCallback, JobCallback
from stoker.store.sql_base import SQLBase

#: Longest error text kept for a failed delivery.
_ERROR_CHARS = 500


class CallbacksSQL(SQLBase):
    """The callback operations of :class:`stoker.store.Store`."""

    def callbacks_due(self, *, now: float) -> bool:
        """Whether a finished job's callback is due (see :class:`CallbackStore`)."""
        return self._one("callbacks_due", now=now) is not None

    def claim_due_callbacks(self, *, now: float, hold_s: float,
                            limit: int = 20) -> list[DueCallback]:
        """Due callbacks of finished jobs, held for ``hold_s`` (see :class:`CallbackStore`)."""
        with self._tx(durable=False) as conn:
            rows = self._x(conn, "claim_due_callbacks", now=now, hold_until=now + hold_s,
                           limit=limit).fetchall()
        return [DueCallback(str(job_id), str(url), int(attempts))
                for job_id, url, attempts in rows]

    def record_callback_delivered(self, job_id: str, *, now: float) -> None:
        """The receiver took it."""
        with self._tx() as conn:
            self._x(conn, "callback_delivered", job_id=job_id, now=now)

    def record_callback_failed(self, job_id: str, *, error: str, retry_at: float | None,
                               now: float) -> None:
        """A failed delivery: retried at ``retry_at``, or given up (None)."""
        with self._tx() as conn:
            self._x(conn, "callback_failed", job_id=job_id, error=error[:_ERROR_CHARS],
                    next_attempt_at=retry_at, given_up_at=now if retry_at is None else None)

    def get_job_callback(self, job_id: str) -> JobCallback | None:
        """The job's callback, if it named one."""
        row = self._one("get_job_callback", job_id=job_id)
        if row is None:
            return None
        job, url, attempts, next_at, delivered, given_up, error = row
        return JobCallback(str(job), str(url), int(attempts), float(next_at), delivered,
                           given_up, error)
