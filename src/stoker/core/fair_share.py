"""Weighted fair share: how many of a batch's slots each queue group gets.

A group is one team's queued requests in one tier. Slots are shared in proportion to the
groups' weights (water-filling: a group that needs less than its share gives the rest back);
slots that do not divide evenly go by largest remainder, then to the group whose oldest
request has waited longest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Claim:
    """A group competing for slots: its key, how many it could use, its weight and age."""

    key: tuple[str, str]
    wanted: int
    weight: float
    head_enqueued_at: float


def share_slots(claims: Sequence[Claim], slots: int) -> dict[tuple[str, str], int]:
    """Split ``slots`` among ``claims`` by weighted water-filling; never more than wanted."""
    given = {c.key: 0 for c in claims}
    active = [c for c in claims if c.wanted > 0 and c.weight > 0]
    left = slots
    while left > 0 and active:
        total_weight = sum(c.weight for c in active)
        satisfied = [c for c in active if c.wanted - given[c.key] <= left * c.weight / total_weight]
        if satisfied:
            for c in satisfied:
                left -= c.wanted - given[c.key]
                given[c.key] = c.wanted
            active = [c for c in active if c not in satisfied]
            continue
        exact = {c.key: left * c.weight / total_weight for c in active}
        for c in active:
            given[c.key] += int(exact[c.key])
        left -= sum(int(v) for v in exact.values())
        # Leftover slots: largest fractional share first (ties: oldest head), one each.
        by_claim = sorted(active, key=lambda c: (-(exact[c.key] % 1), c.head_enqueued_at, c.key))
        for c in by_claim:
            if left == 0:
                break
            given[c.key] += 1
            left -= 1
        active = [c for c in active if given[c.key] < c.wanted]
    return {k: v for k, v in given.items() if v > 0}
