"""Batch formation: how many requests of which queue groups a runner takes now, or until when
it waits.

Rules:
- strict priority across tiers: a higher tier's requests go first;
- within one priority level, teams share the batch by weight (weighted fair share), so a team
  with thousands queued does not delay a team with one by more than one batch;
- within one team and tier, oldest first (the store keeps that order);
- a tier outside its dispatch window waits, unless it may use an otherwise idle pool;
- a group whose oldest request has waited ``starvation_age_s`` is promoted to the highest level
  present, capped at ``starvation_ceiling`` and never above the online tier's priority (so
  nothing waits forever behind busier tiers, and nothing promoted outranks online traffic);
- a full batch is dispatched at once; a partial one waits at most ``max_wait_ms`` from its
  oldest request, then goes as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from stoker.core.fair_share import Claim, FairShareState, GroupKey, share_slots
from stoker.core.model import QueueGroup, Tier


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
class SchedulingPolicy:
    """Tiers, team weights and the anti-starvation bound in force."""

    tiers: Mapping[str, Tier]
    team_weights: Mapping[str, float] = field(default_factory=dict)
    starvation_age_s: float | None = None
    starvation_ceiling: int | None = None
    #: Promotion never goes above this tier's priority (when the tier exists).
    online_tier: str = "online"

    def priority(self, tier: str) -> int:
        """A tier's priority; a tier no longer configured ranks below every known one."""
        known = self.tiers.get(tier)
        return known.priority if known is not None else -1

    def weight(self, team: str) -> float:
        """A team's fair-share weight (1 unless configured)."""
        return self.team_weights.get(team, 1.0)


@dataclass(frozen=True, slots=True)
class Pick:
    """Lease the ``count`` oldest queued requests of ``team`` in ``tier``."""

    tier: str
    team: str
    count: int


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Lease these picks now; together they are at most one batch."""

    picks: tuple[Pick, ...]

    @property
    def size(self) -> int:
        """Requests in the batch."""
        return sum(p.count for p in self.picks)


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to dispatch yet; decide again at ``until`` (or sooner, when work arrives)."""

    until: float | None


BatchDecision = Dispatch | Wait


def dispatchable(groups: Sequence[QueueGroup], policy: SchedulingPolicy, *,
                 now: float) -> list[QueueGroup]:
    """The groups that may run now: in-window tiers, else tiers that may use an idle pool."""
    live = [g for g in groups if g.queued > 0]
    in_window = [g for g in live if _window_open(policy.tiers.get(g.tier), now)]
    if in_window:
        return in_window
    return [g for g in live if _idle_use(policy.tiers.get(g.tier))]


def _window_open(tier: Tier | None, now: float) -> bool:
    return tier is None or tier.window is None or tier.window.contains(now)


def _idle_use(tier: Tier | None) -> bool:
    return tier is not None and tier.run_outside_window_when_idle


def effective_priority(group: QueueGroup, policy: SchedulingPolicy, top: int, *,
                       now: float) -> int:
    """The group's tier priority, promoted if its oldest request has starved."""
    own = policy.priority(group.tier)
    bound = policy.starvation_age_s
    if bound is None or now - group.head_enqueued_at < bound:
        return own
    ceiling = top if policy.starvation_ceiling is None else min(top, policy.starvation_ceiling)
    if policy.online_tier in policy.tiers:
        ceiling = min(ceiling, policy.priority(policy.online_tier))
    return max(own, ceiling)


def plan_batch(groups: Sequence[QueueGroup], share: FairShareState, config: BatchConfig,
               policy: SchedulingPolicy, *, now: float
               ) -> tuple[BatchDecision, FairShareState]:
    """Decide what a runner with ``config`` takes from the model's queue ``groups`` at ``now``.

    ``share`` is the fair-share state left by the model's previous batch; the state returned
    is the one to keep if the batch is leased (a wait leaves it as it was)."""
    ready = dispatchable(groups, policy, now=now)
    if not ready:
        return Wait(until=None), share
    total = sum(g.queued for g in ready)
    if total < config.max_batch_size:
        deadline = min(g.head_enqueued_at for g in ready) + config.max_wait_ms / 1000.0
        if now < deadline:
            return Wait(until=deadline), share
    picks, share = _allocate(ready, min(total, config.max_batch_size), share, policy, now=now)
    return Dispatch(picks), share


def _allocate(groups: Sequence[QueueGroup], slots: int, share: FairShareState,
              policy: SchedulingPolicy, *, now: float
              ) -> tuple[tuple[Pick, ...], FairShareState]:
    top = max(policy.priority(g.tier) for g in groups)
    levels: dict[int, list[QueueGroup]] = {}
    for g in groups:
        levels.setdefault(effective_priority(g, policy, top, now=now), []).append(g)
    waiting = {(g.tier, g.team) for g in groups}
    # Groups still waiting keep their passes; a level that takes part starts them afresh.
    passes: dict[GroupKey, float] = {k: p for k, p in share.passes.items() if k in waiting}
    picks: list[Pick] = []
    for level in sorted(levels, reverse=True):
        if slots == 0:
            break
        claims = [Claim((g.tier, g.team), g.queued, policy.weight(g.team), g.head_enqueued_at)
                  for g in levels[level]]
        given, level_share = share_slots(claims, slots, share)
        passes.update(level_share.passes)
        for g in sorted(levels[level], key=lambda g: (g.head_enqueued_at, g.tier, g.team)):
            count = given.get((g.tier, g.team), 0)
            if count:
                picks.append(Pick(g.tier, g.team, count))
                slots -= count
    return tuple(picks), FairShareState(passes)
