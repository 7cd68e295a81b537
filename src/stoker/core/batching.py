"""Batch formation: which queued requests a runner takes now, or until when it waits.

Rules:
- higher tier priority first, oldest first within a tier (then submission order);
- a full batch (``max_batch_size`` requests available) is dispatched at once;
- a partial batch waits at most ``max_wait_ms`` from its oldest request, then goes as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stoker.core.model import QueuedRequest


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """A runner's batching limits."""

    max_batch_size: int
    max_wait_ms: int

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.max_wait_ms < 0:
            raise ValueError("max_wait_ms must not be negative")


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Lease these requests now, in this order."""

    request_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to dispatch yet; decide again at ``until`` (or sooner, when work arrives)."""

    until: float | None


BatchDecision = Dispatch | Wait


def dispatch_order(queued: Sequence[QueuedRequest]) -> list[QueuedRequest]:
    """Queued requests in the order they are served: priority desc, then age, then sequence."""
    return sorted(queued, key=lambda r: (-r.priority, r.enqueued_at, r.seq, r.id))


def plan_batch(
    queued: Sequence[QueuedRequest], config: BatchConfig, *, now: float
) -> BatchDecision:
    """Decide what a runner with ``config`` takes from ``queued`` at time ``now``.

    ``queued`` may be the whole queue for the model or any prefix of it in dispatch order that
    holds at least ``max_batch_size`` requests when that many exist.
    """
    if not queued:
        return Wait(until=None)
    ordered = dispatch_order(queued)
    if len(ordered) >= config.max_batch_size:
        return Dispatch(tuple(r.id for r in ordered[: config.max_batch_size]))
    oldest = min(r.enqueued_at for r in ordered)
    deadline = oldest + config.max_wait_ms / 1000.0
    if now >= deadline:
        return Dispatch(tuple(r.id for r in ordered))
    return Wait(until=deadline)
