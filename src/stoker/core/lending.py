"""Lending idle online capacity to work that can wait, and taking it back: runners of Stoker's
own pool (:func:`may_lend_runner`), and an external online fleet's replicas (the rest).

The fleet is an external online service (vLLM replicas); each replica reports its own load
(running and waiting requests, KV-cache use). The policy decides how many replicas the service
needs now, with headroom, and lends the rest, one step at a time and only after the load has
stayed low for ``lend_delay_s``; when the load rises it takes back at once as many as it needs.

The service's owner gets these guarantees, whatever the metrics say:

- at least ``min_serving_replicas`` always serve (lending never takes the service to zero);
- a replica that cannot be scraped is neither lent nor counted as capacity;
- pressure on a serving replica (requests waiting, or its KV cache nearly full) reclaims a
  replica immediately, and stops all lending until the load has been calm again for the delay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """One replica's load as its metrics report it (``reachable`` False: no answer)."""

    name: str
    running: float = 0.0
    waiting: float = 0.0
    kv_cache_usage: float = 0.0
    reachable: bool = True


@dataclass(frozen=True, slots=True)
class LendingConfig:
    """What the online service needs kept for it.

    ``requests_per_replica``: the running requests one replica serves within its latency
    target; demand is sized against it with ``headroom`` (0.25: a quarter more). ``pressure``:
    more than ``max_waiting`` requests waiting on a serving replica, or KV-cache use above
    ``kv_cache_high``.
    """

    requests_per_replica: float
    headroom: float = 0.25
    min_serving_replicas: int = 1
    max_waiting: float = 0.0
    kv_cache_high: float = 0.85
    lend_delay_s: float = 300.0
    lend_step: int = 1
    #: Replicas kept serving beyond what the load needs when lending (a band between lending
    #: and taking back, so that noise in the load does not lend and reclaim in turn).
    spare_replicas: int = 0

    def __post_init__(self) -> None:
        if self.requests_per_replica <= 0:
            raise ValueError("requests_per_replica must be positive")
        if self.min_serving_replicas < 1:
            raise ValueError("min_serving_replicas must be at least 1")
        if self.lend_step < 1:
            raise ValueError("lend_step must be at least 1")


@dataclass(frozen=True, slots=True)
class LendingState:
    """The replicas lent, oldest loan first, and since when the load has been calm (low
    enough to lend; None: it is not)."""

    lent: tuple[str, ...] = ()
    calm_since: float | None = None


@dataclass(frozen=True, slots=True)
class LendingDecision:
    """What to do now: replicas to lend and to take back, why (``reason``: one of a few
    words, fit for a metric label) and the detail for people."""

    needed: int
    serving: int
    demand: float
    lend: tuple[str, ...] = ()
    reclaim: tuple[str, ...] = ()
    reason: str = "sized"
    detail: str = ""


def replicas_needed(demand: float, config: LendingConfig) -> int:
    """Replicas that serve ``demand`` running-or-waiting requests with headroom."""
    wanted = math.ceil(demand * (1.0 + config.headroom) / config.requests_per_replica - 1e-9)
    return max(config.min_serving_replicas, wanted)


def pressure(load: ReplicaLoad, config: LendingConfig) -> str | None:
    """Why a serving replica is under pressure (None: it is not)."""
    if load.waiting > config.max_waiting:
        return f"{load.name} has {load.waiting:g} requests waiting"
    if load.kv_cache_usage > config.kv_cache_high:
        return f"{load.name} KV cache {load.kv_cache_usage:.0%} full"
    return None


def plan_lending(replicas: Sequence[ReplicaLoad], state: LendingState,
                 config: LendingConfig, *, now: float
                 ) -> tuple[LendingDecision, LendingState]:
    """Which replicas to lend and which to take back at ``now``."""
    lent = set(state.lent)
    serving = [r for r in replicas if r.reachable and r.name not in lent]
    demand = sum(r.running + r.waiting for r in serving)
    needed = replicas_needed(demand, config)
    strained = [why for r in serving if (why := pressure(r, config)) is not None]
    if strained:
        needed = max(needed, len(serving) + 1)
    if needed > len(serving):
        return _reclaim(state, needed, len(serving), demand, strained)
    if needed + config.spare_replicas >= len(serving):
        return (LendingDecision(needed, len(serving), demand, reason="sized",
                                detail="fleet sized to its load"),
                replace(state, calm_since=None))
    calm_since = state.calm_since if state.calm_since is not None else now
    if now - calm_since < config.lend_delay_s:
        return (LendingDecision(needed, len(serving), demand, reason="calming",
                                detail=f"calm for {now - calm_since:.0f}s of "
                                       f"{config.lend_delay_s:.0f}s before lending"),
                LendingState(state.lent, calm_since))
    count = min(config.lend_step, len(serving) - needed - config.spare_replicas)
    quietest = sorted(serving, key=lambda r: (r.running + r.waiting, r.name))[:count]
    names = tuple(r.name for r in quietest)
    return (LendingDecision(needed, len(serving), demand, lend=names, reason="idle",
                            detail=f"load {demand:g} needs {needed} of {len(serving)} serving"),
            LendingState(state.lent + names, now))


def _reclaim(state: LendingState, needed: int, serving: int, demand: float,
             strained: list[str]) -> tuple[LendingDecision, LendingState]:
    """Take back the newest loans first (the oldest borrowers have had longest to run)."""
    count = min(needed - serving, len(state.lent))
    back = tuple(reversed(state.lent))[:count]
    why = "; ".join(strained) if strained else f"load {demand:g} needs {needed} replicas"
    kept = tuple(name for name in state.lent if name not in back)
    return (LendingDecision(needed, serving, demand, reclaim=back,
                            reason="pressure" if strained else "load", detail=why),
            LendingState(kept, None))


@dataclass(frozen=True, slots=True)
class OnlineReserve:
    """Runners of a pool kept free of work below the online tier: ``runners``, or
    ``fraction`` of the warm runners if that is more. ``reclaim_grace_s``: how long a lent
    runner may go on with such work once online requests wait (None: it finishes its batch)."""

    runners: int = 0
    fraction: float = 0.0
    reclaim_grace_s: float | None = None
    #: Online latency past which lent work beside online rows is taken back too.
    latency_target_s: float | None = None

    def size(self, warm: int) -> int:
        """Runners held back when ``warm`` are warm."""
        return max(self.runners, math.ceil(self.fraction * warm - 1e-9))


def may_lend_runner(warm: int, lent_to_others: int, *, already_lent: bool,
                    reserve: OnlineReserve) -> bool:
    """Whether a runner may take work that can wait: it holds some already (a continuous
    runner topping up), or after it, the warm runners not holding such work still make the
    reserve. Online work goes first regardless; this only keeps runners free for it."""
    return already_lent or warm - lent_to_others - 1 >= reserve.size(warm)


def runners_to_reclaim(online_queued: int, idle_runners: int, lent: Sequence[str], *,
                       batch_size: int) -> frozenset[str]:
    """The lent runners to take back for ``online_queued`` waiting requests: a runner per
    batch of them beyond what idle runners take, the same ones whichever runner asks."""
    batches = math.ceil(online_queued / max(batch_size, 1))
    return frozenset(sorted(lent)[:max(0, batches - idle_runners)])


#: The share of recent online requests that must be within the latency target.
LATENCY_QUANTILE = 0.9
#: Fewer recent online requests than this say nothing about latency.
MIN_LATENCY_SAMPLES = 3
#: How far back online requests count towards the latency.
LATENCY_WINDOW_S = 60.0


def online_latencies(jobs: Sequence[tuple[float, float | None]], *, now: float) -> list[float]:
    """Each recent online request's latency: submission to answer, or to ``now`` while it
    is still open (it has waited that long at least)."""
    return [(now if finished is None else finished) - created for created, finished in jobs]


def latency_over_target(latencies: Sequence[float], target_s: float) -> bool:
    """Whether online latency is over its target: the ``LATENCY_QUANTILE`` of the recent
    requests' latencies is past ``target_s`` (never on fewer than ``MIN_LATENCY_SAMPLES``)."""
    if len(latencies) < MIN_LATENCY_SAMPLES:
        return False
    ordered = sorted(latencies)
    at = ordered[min(len(ordered) - 1, math.ceil(LATENCY_QUANTILE * len(ordered)) - 1)]
    return at > target_s


def lending_pool(fleet: str) -> str:
    """The name a fleet's decisions and controller lease go by (beside model pools)."""
    return f"lending:{fleet}"


def withdraw_unknown(state: LendingState, fleet: Sequence[str]) -> LendingState:
    """The state without loans of replicas no longer in the fleet."""
    known = set(fleet)
    return replace(state, lent=tuple(name for name in state.lent if name in known))
