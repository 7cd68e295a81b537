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
    mine = store.leased_requests_of_runner(runner.id)
    held = [rid for rid, tier in mine if not online_ask_takes(tier, policy)]
    if not held:
        return None
    online_queued = sum(g.queued for g in store.queue_groups(runner.model)
                        if online_ask_takes(g.tier, policy))
    order = {"request_ids": held, "grace_s": reserve.reclaim_grace_s}
    if online_queued == 0:
        # None queues: the sign that online demand rose is its latency, where the runner
        # serves online rows beside the lent work that slows them.
        serves_online = len(held) < len(mine)
        return order if serves_online and _online_latency_over(svc, runner.model,
                                                                reserve) else None
    lent = [r for r, tiers in store.leased_tiers_by_runner(runner.model).items()
            if any(not online_ask_takes(t, policy) for t in tiers)]
    idle = sum(1 for r in store.list_runners()
               if r.model == runner.model and r.state == RunnerState.IDLE)
    chosen = runners_to_reclaim(online_queued, idle, lent,
                                batch_size=svc.settings.batching_for(runner.model).max_batch_size)
    if runner.id not in chosen:
        return None
    return order


def _online_latency_over(svc: Services, model: str, reserve: OnlineReserve) -> bool:
    """Whether the model's online latency over the last minute is past the reserve's target
    (never without one)."""
    if reserve.latency_target_s is None:
        return False
    now = svc.clock.now()
    recent = [(created, finished) for tier, created, finished
              in svc.store.recent_job_times(model, since=now - LATENCY_WINDOW_S)
              if online_ask_takes(tier, svc.policy)]
    return latency_over_target(online_latencies(recent, now=now), reserve.latency_target_s)
