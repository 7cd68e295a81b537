"""How many runners a model's pool should have: a pure decision, from queued work and what
the pool has measured, never from GPU utilization or request counts alone.

Per tier, the work queued at that tier and above must drain within the tier's target
(``drain_target_s``): the runners needed are that work's tokens over what one runner generates
per second (measured from the recorded batches), over the time left once a new runner has gone
through its cold start (learnt from the recorded ``starting`` intervals); when a cold start
takes the whole target, the new runners are those that drain it one target after they are
warm. Runners already
starting count as capacity. A runner is stopped only after ``keep_warm_s`` idle, one per
``cooldown_s``, never below ``min_runners`` (below it only to zero, when ``scale_to_zero`` and
nothing is queued). A tier whose window opens within a cold start is pre-warmed.

The live controller and the simulator call :func:`decide` with the same data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stoker.core.model import Tier


@dataclass(frozen=True, slots=True)
class TierDemand:
    """What one tier has queued for the pool, and how soon it must be done."""

    tier: str
    priority: int
    queued_requests: int
    #: Completion tokens the queued requests may generate (their max_tokens).
    queued_tokens: int
    drain_target_s: float
    #: Seconds until the tier's dispatch window opens (None: open now, or no window).
    window_opens_in_s: float | None = None


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """The pool as the store knows it at one moment."""

    demand: Sequence[TierDemand]
    #: Warm runners (idle, busy) by id, with when each last finished work (idle since), or
    #: None while it is busy.
    warm: Mapping[str, float | None]
    starting: int
    #: Tokens per second one runner generates, measured from recorded batches (None: none yet).
    tokens_per_runner_s: float | None
    #: Seconds a new runner takes to become warm, learnt from recorded starts (None: none yet).
    cold_start_s: float | None


@dataclass(frozen=True, slots=True)
class AutoscaleConfig:
    """One pool's bounds and pace."""

    min_runners: int
    max_runners: int
    keep_warm_s: float = 1800.0
    scale_to_zero: bool = False
    cooldown_s: float = 60.0
    #: Used until the pool has measured its own.
    assumed_tokens_per_runner_s: float = 100.0
    assumed_cold_start_s: float = 60.0

    def __post_init__(self) -> None:
        if not 0 <= self.min_runners <= self.max_runners or self.max_runners < 1:
            raise ValueError("need 0 <= min_runners <= max_runners and max_runners >= 1")


@dataclass(frozen=True, slots=True)
class AutoscaleState:
    """What the autoscaler remembers between decisions."""

    last_stop_at: float | None = None


@dataclass(frozen=True, slots=True)
class ScaleDecision:
    """Start this many runners and drain these; with the reason and the signals behind it."""

    desired: int
    start: int
    stop: tuple[str, ...]
    reason: str
    needed_by_tier: Mapping[str, int]
    tokens_per_runner_s: float
    cold_start_s: float


def tier_demand(queued_by_tier: Mapping[str, int], tiers: Mapping[str, Tier],
                completion_tokens_per_request: float, *, now: float) -> list[TierDemand]:
    """Each tier's queued work as the autoscaler weighs it: requests, the tokens they may
    generate (requests x the pool's mean completion tokens), the tier's target and how soon
    its window opens. Tiers no longer configured, and empty ones, ask for nothing."""
    demand = []
    for name, n in sorted(queued_by_tier.items()):
        tier = tiers.get(name)
        if tier is None or n == 0:
            continue
        opens_in = tier.window.opens_in_s(now) if tier.window is not None else None
        demand.append(TierDemand(name, tier.priority, n,
                                 round(n * completion_tokens_per_request),
                                 tier.drain_target_s, opens_in))
    return demand


def runners_needed(demand: Sequence[TierDemand], *, tokens_per_runner_s: float,
                   cold_start_s: float, warm: int) -> dict[str, int]:
    """Per tier: the runners that drain it and everything above it within its target."""
    needed: dict[str, int] = {}
    ahead = 0
    for tier in sorted(demand, key=lambda d: -d.priority):
        ahead += tier.queued_tokens
        needed[tier.tier] = _runners_for(ahead / tokens_per_runner_s, tier.drain_target_s,
                                         cold_start_s, warm)
    return needed


def _runners_for(work_s: float, target_s: float, cold_start_s: float, warm: int) -> int:
    """Runners that do ``work_s`` runner-seconds within ``target_s``: warm ones work the whole
    target, new ones only what is left of it after their cold start. When a cold start takes
    the whole target, no new runner can be in time: the new ones are those that finish the
    rest one target after they are warm (asking for every runner allowed instead started
    ``max_runners`` for a ten-prompt job, as the simulator showed)."""
    if work_s <= 0:
        return 0
    if work_s <= warm * target_s:
        return math.ceil(work_s / target_s)
    usable_s = target_s - cold_start_s
    if usable_s <= 0:
        usable_s = target_s
    return warm + math.ceil((work_s - warm * target_s) / usable_s)


def decide(snapshot: PoolSnapshot, state: AutoscaleState, config: AutoscaleConfig, *,
           now: float) -> tuple[ScaleDecision, AutoscaleState]:
    """How many runners the pool should have now, and what to start or stop to get there."""
    rate = snapshot.tokens_per_runner_s or config.assumed_tokens_per_runner_s
    cold = snapshot.cold_start_s if snapshot.cold_start_s is not None \
        else config.assumed_cold_start_s
    warm = len(snapshot.warm)
    live = [d for d in snapshot.demand if d.window_opens_in_s is None]
    needed = runners_needed(live, tokens_per_runner_s=rate, cold_start_s=cold, warm=warm)
    want, reason = max(needed.values(), default=0), "drain_target"
    if any(d.queued_requests for d in snapshot.demand
           if d.window_opens_in_s is not None and d.window_opens_in_s <= cold):
        soon = [d for d in snapshot.demand if d.window_opens_in_s is not None]
        prewarm = max(runners_needed(soon, tokens_per_runner_s=rate, cold_start_s=0.0,
                                     warm=0).values(), default=0)
        if prewarm > want:
            want, reason = prewarm, "prewarm_window"
    # Work that may run now, or within a cold start: a tier whose window is hours away asks
    # for nothing yet (it is pre-warmed when its opening comes near).
    queued = sum(d.queued_requests for d in snapshot.demand
                 if d.window_opens_in_s is None or d.window_opens_in_s <= cold)
    floor = 0 if config.scale_to_zero and queued == 0 else config.min_runners
    if queued and want == 0:
        want = 1  # some work, however little: one runner to take it
    desired = min(config.max_runners, max(floor, want))
    if desired == config.max_runners and want > config.max_runners:
        reason = "max_runners"
    elif desired == floor and (want < floor or want == 0):
        reason = "min_runners" if floor else "scale_to_zero"
    have = warm + snapshot.starting
    if desired > have:
        return ScaleDecision(desired, desired - have, (), reason, needed, rate, cold), state
    stop = _idle_to_stop(snapshot, state, config, have - desired, now=now)
    if stop:
        return (ScaleDecision(desired, 0, stop, "keep_warm_expired", needed, rate, cold),
                AutoscaleState(last_stop_at=now))
    return ScaleDecision(desired, 0, (), "steady", needed, rate, cold), state


def _idle_to_stop(snapshot: PoolSnapshot, state: AutoscaleState, config: AutoscaleConfig,
                  surplus: int, *, now: float) -> tuple[str, ...]:
    """At most one runner idle past keep-warm, the longest idle, once per cool-down."""
    if surplus <= 0:
        return ()
    if state.last_stop_at is not None and now - state.last_stop_at < config.cooldown_s:
        return ()
    idle = sorted((since, rid) for rid, since in snapshot.warm.items()
                  if since is not None and now - since >= config.keep_warm_s)
    return (idle[0][1],) if idle else ()
