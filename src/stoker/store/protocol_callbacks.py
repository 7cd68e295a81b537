"""The store's part in completion callbacks: which finished jobs' callbacks are due, and how
each delivery went."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class CallbackState(StrEnum):
    """Where a job's completion callback stands.

    - ``pending``: the job has not finished, or a delivery is due or being retried.
    - ``delivered``: the receiver answered 2xx (terminal).
    - ``failed``: every attempt failed; nothing more is tried (terminal).
    """

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class JobCallback:
    """A job's callback and how its delivery went."""

    job_id: str
    url: str
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    given_up_at: float | None
    last_error: str | None

    @property
    def state(self) -> CallbackState:
        """Delivered, given up, or still to do."""
        if self.delivered_at is not None:
            return CallbackState.DELIVERED
        if self.given_up_at is not None:
            return CallbackState.FAILED
        return CallbackState.PENDING


@dataclass(frozen=True, slots=True)
class DueCallback:
    """A callback claimed for one delivery attempt."""

    job_id: str
    url: str
    attempts: int


class CallbackStore(Protocol):
    """Completion callbacks (stored with the job by ``submit_job``)."""

    def callbacks_due(self, *, now: float) -> bool:
        """Whether any finished job's callback is due at ``now`` (a read only)."""
        ...

    def claim_due_callbacks(self, *, now: float, hold_s: float,
                            limit: int = 20) -> list[DueCallback]:
        """Callbacks of finished jobs that are due at ``now``, oldest first, each held for
        ``hold_s`` so that no other replica claims it while this one delivers."""
        ...

    def record_callback_delivered(self, job_id: str, *, now: float) -> None:
        """The receiver took the callback."""
        ...

    def record_callback_failed(self, job_id: str, *, error: str, retry_at: float | None,
                               now: float) -> None:
        """A delivery failed with ``error``; try again at ``retry_at``, or (None) give up."""
        ...

    def get_job_callback(self, job_id: str) -> JobCallback | None:
        """The job's callback, or None when it named none."""
        ...
