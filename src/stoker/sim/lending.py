"""A day of an online fleet lending its idle replicas, as a SimPy simulation on the live
lending policy (:func:`stoker.core.lending.plan_lending`).

The fleet's online load follows the seed's shape: a floor through the night, a rise from
``day_start_h`` to a peak at midday and back down by ``day_end_h``, with noise. The load
balancer spreads it evenly over the replicas that serve; a replica runs up to
``max_running_per_replica`` requests and queues the rest, and its KV cache fills in proportion.
Every ``scrape_s`` the controller reads those loads and asks the policy, as the live one does.
A lent replica serves Stoker's work; one taken back serves online again after ``reclaim_s``
(its runners finishing their batch). What comes out: the GPU-hours lent (recovered), the
GPU-hours left idle anyway, loans and reclaims, and the online requests that waited for
capacity the fleet had lent.
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import simpy

from stoker.core.lending import LendingConfig, LendingState, ReplicaLoad, plan_lending

DAY_S = 86_400.0
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class FleetDay:
    """The fleet and its day (the seed's: 20 replicas of 4 GPUs, busy 08:00-20:00)."""

    replicas: int = 20
    gpus_per_replica: int = 4
    #: Running requests the fleet sees at night and at the midday peak.
    night_requests: float = 150.0
    peak_requests: float = 560.0
    day_start_h: float = 8.0
    day_end_h: float = 20.0
    #: Relative noise on the load, drawn afresh each scrape.
    noise: float = 0.1
    max_running_per_replica: float = 48.0
    scrape_s: float = 15.0
    reclaim_s: float = 30.0
    seed: int = 0


@dataclass
class LendingDay:
    """What a simulated day came to."""

    gpu_hours: float
    lent_gpu_hours: float
    #: GPU-hours of replicas that served no more than the floor needed, lending or not.
    idle_gpu_hours_without_lending: float
    loans: int
    reclaims: int
    #: Request-seconds that online requests waited because serving replicas were full.
    waiting_request_s: float
    #: The same, for the fleet without lending (all replicas serving).
    waiting_request_s_without_lending: float
    #: (hour, online load, replicas serving, replicas lent) per scrape.
    timeline: list[tuple[float, float, int, int]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The day's figures (timeline left out)."""
        return {"gpu_hours": self.gpu_hours, "lent_gpu_hours": round(self.lent_gpu_hours, 2),
                "lent_share": round(self.lent_gpu_hours / self.gpu_hours, 4),
                "idle_gpu_hours_without_lending": round(self.idle_gpu_hours_without_lending, 2),
                "loans": self.loans, "reclaims": self.reclaims,
                "waiting_request_s": round(self.waiting_request_s, 1),
                "waiting_request_s_without_lending":
                    round(self.waiting_request_s_without_lending, 1)}


def online_load(t_s: float, day: FleetDay) -> float:
    """The fleet's running requests at ``t_s`` seconds into the day, before noise: the night
    floor, plus a raised-sine day between ``day_start_h`` and ``day_end_h``."""
    hour = (t_s % DAY_S) / HOUR_S
    if not day.day_start_h <= hour <= day.day_end_h:
        return day.night_requests
    phase = (hour - day.day_start_h) / (day.day_end_h - day.day_start_h)
    return day.night_requests + (day.peak_requests - day.night_requests) * \
        math.sin(math.pi * phase) ** 2


def replica_loads(demand: float, serving: list[str], day: FleetDay) -> list[ReplicaLoad]:
    """``demand`` spread evenly over ``serving``: each runs up to its limit, queues the rest."""
    if not serving:
        return []
    each = demand / len(serving)
    running = min(each, day.max_running_per_replica)
    return [ReplicaLoad(name, running=running, waiting=each - running,
                        kv_cache_usage=running / day.max_running_per_replica)
            for name in serving]


@dataclass
class _Fleet:
    state: LendingState = field(default_factory=LendingState)
    #: Replicas taken back, serving again at this time.
    returning: dict[str, float] = field(default_factory=dict)


def replay_fleet_day(day: FleetDay, config: LendingConfig) -> LendingDay:
    """Simulate one day of ``day``'s fleet lending under ``config``."""
    env = simpy.Environment()
    names = [f"r{i}" for i in range(day.replicas)]
    rng = random.Random(day.seed)
    fleet = _Fleet()
    result = LendingDay(gpu_hours=day.replicas * day.gpus_per_replica * 24.0,
                        lent_gpu_hours=0.0, idle_gpu_hours_without_lending=0.0, loans=0,
                        reclaims=0, waiting_request_s=0.0, waiting_request_s_without_lending=0.0)
    env.process(_controller(env, day, config, names, rng, fleet, result))
    env.run(until=DAY_S)
    return result


def _controller(env: simpy.Environment, day: FleetDay, config: LendingConfig,
                names: list[str], rng: random.Random, fleet: _Fleet,
                result: LendingDay) -> Generator[simpy.Event, None, None]:
    step_h = day.scrape_s / HOUR_S
    while True:
        now = float(env.now)
        demand = max(0.0, online_load(now, day) * (1.0 + rng.gauss(0.0, day.noise)))
        fleet.returning = {r: at for r, at in fleet.returning.items() if at > now}
        serving = [n for n in names if n not in fleet.state.lent and n not in fleet.returning]
        loads = replica_loads(demand, serving, day)
        # Replicas on their way back neither serve nor can be lent yet.
        loads += [ReplicaLoad(n, reachable=False) for n in fleet.returning]
        decision, fleet.state = plan_lending(loads, fleet.state, config, now=now)
        fleet.returning.update(dict.fromkeys(decision.reclaim, now + day.reclaim_s))
        result.loans += len(decision.lend)
        result.reclaims += len(decision.reclaim)
        result.lent_gpu_hours += len(fleet.state.lent) * day.gpus_per_replica * step_h
        result.waiting_request_s += sum(x.waiting for x in loads) * day.scrape_s
        full = replica_loads(demand, names, day)
        result.waiting_request_s_without_lending += sum(x.waiting for x in full) * day.scrape_s
        spare = day.replicas - config.min_serving_replicas
        floor = max(config.min_serving_replicas,
                    math.ceil(demand / config.requests_per_replica))
        result.idle_gpu_hours_without_lending += \
            min(spare, day.replicas - floor) * day.gpus_per_replica * step_h
        result.timeline.append((now / HOUR_S, demand, len(serving), len(fleet.state.lent)))
        yield env.timeout(day.scrape_s)
