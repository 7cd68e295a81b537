"""Weighted fair share: how many of a batch's slots each queue group gets.

A group is one team's queued requests in one tier. Slots go one at a time to the group that
has had the least service for its weight (start-time fair queuing, as in stride scheduling):
each group carries a *pass*, the slots it was given divided by its weight, and the group with
the lowest pass takes the next slot; ties go to the group whose oldest request has waited
longest. The passes are the state carried from one batch to the next, so shares hold over
many batches, not only within one: with weights 2:1 and batches of one, the heavier team
gets two batches in three, not all of them.

A group that joins (it had nothing queued) starts at the lowest pass in play, neither owed
service for the time it was away nor behind those already waiting: so a team with one request
is served within about one batch, whatever the weights, and never waits while a heavier team
drains thousands.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

GroupKey = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Claim:
    """A group competing for slots: its key, how many it could use, its weight and age."""

    key: GroupKey
    wanted: int
    weight: float
    head_enqueued_at: float


@dataclass(frozen=True, slots=True)
class FairShareState:
    """Each waiting group's pass (slots given divided by weight), relative to the least
    served of them (0). Groups that stopped waiting are forgotten."""

    passes: Mapping[GroupKey, float] = field(default_factory=dict)


def share_slots(claims: Sequence[Claim], slots: int,
                state: FairShareState = FairShareState()
                ) -> tuple[dict[GroupKey, int], FairShareState]:
    """Split ``slots`` among ``claims`` by weight, never more than a claim wants; returns the
    shares and the passes of the claims that took part, for the next batch."""
    active = [c for c in claims if c.wanted > 0 and c.weight > 0]
    if not active:
        return {}, FairShareState()
    known = [state.passes[c.key] for c in active if c.key in state.passes]
    joining_at = min(known) if known else 0.0
    passes = {c.key: state.passes.get(c.key, joining_at) for c in active}
    given = dict.fromkeys(passes, 0)
    heap = [(passes[c.key], c.head_enqueued_at, c.key, c) for c in active]
    heapq.heapify(heap)
    left = slots
    while left > 0 and heap:
        _, head, key, claim = heapq.heappop(heap)
        given[key] += 1
        passes[key] += 1.0 / claim.weight
        left -= 1
        if given[key] < claim.wanted:
            heapq.heappush(heap, (passes[key], head, key, claim))
    floor = min(passes.values())
    return ({k: v for k, v in given.items() if v > 0},
            FairShareState({k: p - floor for k, p in passes.items()}))
