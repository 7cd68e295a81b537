"""The store's part in sizing the pool: what the pool measured, the autoscaler's decisions, and
which replica's controller may act (a lease per model pool)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class RollStatus(StrEnum):
    """Where a rolling model update is.

    - ``rolling``: runners of the new checkpoint are being started, old ones drained.
    - ``done``: every runner of the pool is of the new checkpoint (terminal).
    - ``failed``: a new runner did not get warm; the old ones keep serving (terminal).
    """

    ROLLING = "rolling"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ModelRoll:
    """A rolling update of one model's pool to another checkpoint."""

    id: str
    model: str
    path: str
    revision: str
    status: RollStatus
    started_at: float
    ended_at: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class PoolMeasurements:
    """What a model's pool has measured of itself (None: nothing recorded yet)."""

    #: Tokens one runner generates per second busy, over its recent batches.
    tokens_per_runner_s: float | None
    #: Completion tokens a request generates, on average, over those batches.
    completion_tokens_per_request: float | None
    #: Median seconds a recent runner took from registering to warm.
    cold_start_s: float | None
    cold_starts_measured: int = 0


@dataclass(frozen=True, slots=True)
class PoolDecisionRecord:
    """One autoscaler decision with the signals it was made from."""

    model: str
    decided_at: float
    controller: str
    desired: int
    started: int
    stopped: tuple[str, ...]
    reason: str
    signals: Mapping[str, Any] = field(default_factory=dict)


class PoolStore(Protocol):
    """The pool operations of :class:`stoker.store.Store`."""

    def claim_pool_controller(self, model: str, holder: str, *, ttl_s: float,
                              now: float) -> bool:
        """Take or renew the right to act for ``model``'s pool until ``now + ttl_s``: True for
        ``holder`` while no other holder's lease is live."""
        ...

    def release_pool_controller(self, model: str, holder: str) -> None:
        """Give the lease up (on shutdown), so another replica takes over at once."""
        ...

    def warm_runners(self, model: str) -> int:
        """The model's runners that are idle or busy."""
        ...

    def leased_tiers_by_runner(self, model: str) -> dict[str, frozenset[str]]:
        """Per runner of ``model`` holding an open lease, the tiers of its leased requests."""
        ...

    def recent_job_times(self, model: str, *, since: float,
                         limit: int = 500) -> list[tuple[str, float, float | None]]:
        """(tier, created_at, finished_at or None) of the model's jobs submitted since
        ``since``, the newest ``limit`` of them (online latency is read from these)."""
        ...

    def pool_measurements(self, model: str, *, batches: int = 200,
                          starts: int = 20) -> PoolMeasurements:
        """Throughput over the model's last ``batches`` batches and cold start over its last
        ``starts`` starts that got warm."""
        ...

    def record_pool_decision(self, decision: PoolDecisionRecord) -> None:
        """Keep a decision."""
        ...

    def pool_decisions(self, *, model: str | None = None,
                       limit: int = 50) -> list[PoolDecisionRecord]:
        """The latest decisions, newest first (of one model, or all)."""
        ...

    def pool_decision_counts(self) -> dict[tuple[str, str], int]:
        """Decisions recorded per (model, reason)."""
        ...

    def start_roll(self, model: str, path: str, revision: str, *, now: float) -> ModelRoll:
        """Begin moving ``model``'s pool to the checkpoint at ``path``; Conflict while
        another roll of it is in progress."""
        ...

    def model_rolls(self, model: str, *, limit: int = 10) -> list[ModelRoll]:
        """The model's rolls, newest first."""
        ...

    def pinned_open_requests(self, model: str) -> dict[str, int]:
        """Queued or leased requests of ``model`` pinned to a revision, by revision (a roll
        keeps a runner of each such revision until they finish)."""
        ...

    def end_roll(self, roll_id: str, status: RollStatus, message: str, *,
                 now: float) -> None:
        """Close a roll in progress as done or failed."""
        ...
