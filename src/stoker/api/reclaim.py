"""Taking lent runners back for online work: what a runner's heartbeat is told to hand back.

When online requests of a model queue and no runner of it is idle, the runners holding work
below the online tier are asked (in their heartbeat's reply) to stop that work after the pool's
``reclaim_grace_s`` and hand it back; they keep any online rows. Which runners, and how many,
is :func:`stoker.core.lending.runners_to_reclaim`'s: a runner per batch of waiting online work
beyond what idle runners take.
"""

from __future__ import annotations

from typing import Any

from stoker.api.scheduling import online_reserve
from stoker.api.services import Services
from stoker.core.continuous import online_ask_takes
from stoker.core.lending import runners_to_reclaim
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
    if online_queued == 0:
        return None
    lent = [r for r, tiers in store.leased_tiers_by_runner(runner.model).items()
            if any(not online_ask_takes(t, policy) for t in tiers)]
    idle = sum(1 for r in store.list_runners()
               if r.model == runner.model and r.state == RunnerState.IDLE)
    chosen = runners_to_reclaim(online_queued, idle, lent,
                                batch_size=svc.settings.batching_for(runner.model).max_batch_size)
    if runner.id not in chosen:
        return None
    return {"request_ids": [rid for rid, _ in held], "grace_s": reserve.reclaim_grace_s}
