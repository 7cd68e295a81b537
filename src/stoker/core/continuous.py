"""Continuous batching: when a runner with rows in flight asks for more, and what it may get.

A runner decoding continuously keeps up to ``max_batch_size`` rows in flight. Two asks keep
it full:

- **fill**: while rows are fewer than ``max_batch_size``, ask for the free slots. An empty
  loop waits for a fuller batch (``max_wait_ms``, as a static batch would); a running loop
  takes whatever is queued at once, since every step it waits is a slot decoding nothing.
- **headroom**: online requests may join past ``max_batch_size``, up to
  ``online_headroom_rows`` more, so an online request never waits for a batch row to finish
  before its first token. Only tiers at or above the online tier's priority are taken there.

What the server hands out for either ask is decided by the same policy as any batch
(:func:`stoker.core.batching.plan_batch`: tiers, windows, starvation, fair share), over the
groups the ask may take and capped at the slots it names.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stoker.core.batching import BatchConfig, BatchDecision, SchedulingPolicy, Wait, plan_batch
from stoker.core.fair_share import FairShareState
from stoker.core.model import QueueGroup


@dataclass(frozen=True, slots=True)
class LoopConfig:
    """A continuous runner's limits."""

    max_batch_size: int
    online_headroom_rows: int = 0

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if self.online_headroom_rows < 0:
            raise ValueError("online_headroom_rows must not be negative")


@dataclass(frozen=True, slots=True)
class TopUp:
    """Ask for up to ``max_rows`` more requests; ``online_only``: only from online tiers;
    ``loop_running``: rows are in flight, so nothing should wait for a fuller batch."""

    max_rows: int
    online_only: bool
    loop_running: bool


def plan_fill(in_flight: int, config: LoopConfig) -> TopUp | None:
    """The fill ask for a loop holding ``in_flight`` rows (None: it is full)."""
    free = config.max_batch_size - in_flight
    if free <= 0:
        return None
    return TopUp(free, online_only=False, loop_running=in_flight > 0)


def plan_headroom(in_flight: int, config: LoopConfig) -> TopUp | None:
    """The online ask past ``max_batch_size`` (None: no headroom left, or none configured)."""
    room = min(config.online_headroom_rows,
               config.max_batch_size + config.online_headroom_rows - in_flight)
    if room <= 0:
        return None
    return TopUp(room, online_only=True, loop_running=in_flight > 0)


def online_ask_takes(tier: str, policy: SchedulingPolicy) -> bool:
    """Whether an online-only ask may take work of ``tier``: the online tier and those
    above it, and nothing when no online tier is configured."""
    return (policy.online_tier in policy.tiers
            and policy.priority(tier) >= policy.priority(policy.online_tier))


def plan_top_up(groups: Sequence[QueueGroup], share: FairShareState, ask: TopUp,
                batch: BatchConfig, policy: SchedulingPolicy, *, now: float
                ) -> tuple[BatchDecision, FairShareState]:
    """What a runner's ``ask`` gets from the model's queue ``groups`` at ``now``: the batch
    policy over the groups the ask may take, at most ``ask.max_rows`` of them, without
    waiting for a fuller batch when the loop is running."""
    if ask.online_only:
        groups = [g for g in groups if online_ask_takes(g.tier, policy)]
    if not groups:
        return Wait(until=None), share
    config = BatchConfig(ask.max_rows,
                         0 if ask.loop_running or ask.online_only else batch.max_wait_ms)
    return plan_batch(groups, share, config, policy, now=now)
