"""Small pools and traces for the simulator's tests."""

from __future__ import annotations

from collections.abc import Sequence

from stoker.core.accounting import RunnerClass
from stoker.core.autoscale import AutoscaleConfig
from stoker.core.batching import BatchConfig, SchedulingPolicy
from stoker.core.model import Tier
from stoker.sim.batch_time import BatchTimeModel
from stoker.sim.engine import PoolConfig, SimConfig
from stoker.sim.trace import TraceJob

GPU = RunnerClass("gpu", "h100", 80, 3.6)  # a cent a second: costs read as seconds
TIERS = {"online": Tier("online", 100, drain_target_s=5.0),
         "smoke": Tier("smoke", 50, drain_target_s=60.0),
         "batch": Tier("batch", 10, drain_target_s=3600.0)}


def pool(*, runners: int = 1, max_batch_size: int = 1, max_wait_ms: int = 0,
         step_s: float = 0.1, cold_start_s: float = 30.0,
         autoscale: AutoscaleConfig | None = None) -> PoolConfig:
    return PoolConfig(BatchConfig(max_batch_size, max_wait_ms), GPU, BatchTimeModel(step_s),
                      cold_start_s, runners=runners, autoscale=autoscale, interval_s=1.0)


def config(p: PoolConfig, **kwargs: object) -> SimConfig:
    return SimConfig(SchedulingPolicy(TIERS), {"m": p}, **kwargs)  # type: ignore[arg-type]


def job(at: float, *, tier: str = "batch", team: str = "a", requests: int = 1,
        completion: int = 10, prompt: int = 0) -> TraceJob:
    return TraceJob(at, team, tier, "m", (prompt,) * requests, (completion,) * requests)


def waits(timings: Sequence[object]) -> list[float]:
    return [t.started_at - t.arrived_at for t in timings]  # type: ignore[attr-defined]
