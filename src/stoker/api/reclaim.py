"""Taking lent runners back for online work: what a runner's heartbeat is told to hand back.

When online requests of a model queue and no runner of it is idle, the runners holding work
below the online tier are asked (in their heartbeat's reply) to stop that work after the pool's
``reclaim_grace_s`` and hand it back; they keep any online rows. Which runners, and how many,
is :func:`stoker.core.lending.runners_to_reclaim`'s: a runner per batch of waiting online work
beyond what idle runners take. With the reserve's ``latency_target_s``, a runner serving online
rows beside such work hands it back too when the model's online latency is over the target,
though nothing queues (:func:`stoker.core.lending.latency_over_target`).
"""

from __future__ import annotations

from typing import Any

from stoker.api.scheduling import online_reserve
from stoker.api.services import Services
from stoker.core.continuous import online_ask_takes
from stoker.core.lending import (
    LATENCY_WINDOW_S,
    OnlineReserve,
    latency_over_target,
    online_latencies,
    runners_to_reclaim,
)
from stoker.core.model import Runner, RunnerState


def reclaim_order(svc: Services, runner: Runner) -> dict[str, Any] | None:
    """``{"request_ids": [...], "grace_s": g}``: what ``runner`` should hand back, or None."""
    reserve = online_reserve(svc.settings, runner.model)
    if reserve is None or reserve.reclaim_grace_s is None:
        return None
    store, policy = svc.store, svc.policy
    held = [(rid, tier) for rid, tier in store.leased_requests_of_runner(runner.id)
            if not online_ask_takes(tier, policy)]
    if not held:
        return None
    online_queued = sum(g.queued for g in store.queue_groups(runner.model)
                        if online_ask_takes(g.tier, policy))
    order = {"request_ids": [rid for rid, _ in held], "grace_s": reserve.reclaim_grace_s}
    if online_queued == 0:
        return order if _online_slowed_by(svc, runner, reserve) else None
    lent = [r for r, tiers in store.leased_tiers_by_runner(runner.model).items()
            if any(not online_ask_takes(t, policy) for t in tiers)]
    idle = sum(1 for r in store.list_runners()
               if r.model == runner.model and r.state == RunnerState.IDLE)
    chosen = runners_to_reclaim(online_queued, idle, lent,
                                batch_size=svc.settings.batching_for(runner.model).max_batch_size)
    if runner.id not in chosen:
        return None
    return order


def _online_slowed_by(svc: Services, runner: Runner, reserve: OnlineReserve) -> bool:
    """Whether ``runner`` serves online requests beside lent work while the model's online
    latency is over the reserve's target: then the lent work goes, to speed the online rows
    up (none is queued, so this is the only sign that online demand has risen)."""
    if reserve.latency_target_s is None:
        return False
    store, policy = svc.store, svc.policy
    tiers = store.leased_tiers_by_runner(runner.model).get(runner.id, frozenset())
    if not any(online_ask_takes(t, policy) for t in tiers):
        return False
    now = svc.clock.now()
    recent = [(created, finished) for tier, created, finished
              in store.recent_job_times(runner.model, since=now - LATENCY_WINDOW_S)
              if online_ask_takes(tier, policy)]
    return latency_over_target(online_latencies(recent, now=now), reserve.latency_target_s)
