"""The autoscale policy: drain targets met in time, bounds held, no flapping, keep-warm."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.autoscale import (
    AutoscaleConfig,
    AutoscaleState,
    PoolSnapshot,
    TierDemand,
    decide,
    runners_needed,
    tier_demand,
)
from stoker.core.model import Tier
from stoker.core.windows import DispatchWindow

CONFIG = AutoscaleConfig(min_runners=1, max_runners=4, keep_warm_s=1800, cooldown_s=60)


def smoke(tokens: int, *, target_s: float = 60.0, opens_in: float | None = None) -> TierDemand:
    return TierDemand("smoke", 80, queued_requests=max(1, tokens // 100), queued_tokens=tokens,
                      drain_target_s=target_s, window_opens_in_s=opens_in)


def pool(demand: list[TierDemand], *, warm: dict[str, float | None] | None = None,
         starting: int = 0, rate: float | None = 100.0, cold: float | None = 20.0
         ) -> PoolSnapshot:
    return PoolSnapshot(demand, {"r0": None} if warm is None else warm, starting, rate, cold)


def test_a_burst_scales_up_to_meet_the_drain_target_counting_cold_start() -> None:
    # 12,000 tokens at 100 tokens/s = 120 runner-seconds, within 60 s: the warm runner does
    # 60, each new one 60 - 20 s of cold start = 40: two more.
    decision, _ = decide(pool([smoke(12_000)]), AutoscaleState(), CONFIG, now=0.0)
    assert (decision.desired, decision.start, decision.reason) == (3, 2, "drain_target")
    assert decision.needed_by_tier == {"smoke": 3}


def test_runners_already_starting_count() -> None:
    decision, _ = decide(pool([smoke(12_000)], starting=2), AutoscaleState(), CONFIG, now=0.0)
    assert (decision.desired, decision.start) == (3, 0)


def test_the_cold_start_learnt_changes_the_answer() -> None:
    slow, _ = decide(pool([smoke(12_000)], cold=50.0), AutoscaleState(), CONFIG, now=0.0)
    assert slow.desired == 4  # each new runner has only 10 s: as many as allowed
    assert slow.reason == "max_runners"


def test_an_idle_runner_stops_only_after_keep_warm_one_per_cooldown() -> None:
    warm = {"a": 0.0, "b": 100.0, "c": None}
    snapshot = pool([], warm=warm)
    early, state = decide(snapshot, AutoscaleState(), CONFIG, now=1000.0)
    assert (early.stop, early.reason) == ((), "steady")
    first, state = decide(snapshot, state, CONFIG, now=1900.0)
    assert (first.stop, first.reason) == (("a",), "keep_warm_expired")
    again, state = decide(pool([], warm={"b": 100.0, "c": None}), state, CONFIG, now=1910.0)
    assert again.stop == ()  # cooling down
    later, _ = decide(pool([], warm={"b": 100.0, "c": None}), state, CONFIG, now=1961.0)
    assert later.stop == ("b",)


def test_never_below_min_and_to_zero_only_when_allowed_and_idle() -> None:
    idle = pool([], warm={"a": 0.0})
    decision, _ = decide(idle, AutoscaleState(), CONFIG, now=10_000.0)
    assert (decision.desired, decision.stop, decision.reason) == (1, (), "steady")
    to_zero = replace(CONFIG, min_runners=1, scale_to_zero=True)
    decision, _ = decide(idle, AutoscaleState(), to_zero, now=10_000.0)
    assert (decision.desired, decision.stop) == (0, ("a",))
    # From zero, the first request starts a runner.
    decision, _ = decide(pool([smoke(10)], warm={}), AutoscaleState(), to_zero, now=0.0)
    assert (decision.desired, decision.start) == (1, 1)


def test_a_window_about_to_open_prewarms() -> None:
    nightly = TierDemand("regression", 60, queued_requests=300, queued_tokens=30_000,
                         drain_target_s=3600, window_opens_in_s=15.0)
    to_zero = replace(CONFIG, min_runners=0, scale_to_zero=True)
    decision, _ = decide(pool([nightly], warm={}, cold=20.0), AutoscaleState(), to_zero,
                         now=0.0)
    assert (decision.desired, decision.start, decision.reason) == (1, 1, "prewarm_window")
    later = replace(nightly, window_opens_in_s=7200.0)
    decision, _ = decide(pool([later], warm={}, cold=20.0), AutoscaleState(), to_zero, now=0.0)
    assert (decision.desired, decision.start) == (0, 0)


def test_higher_tiers_count_in_a_lower_tier_s_drain() -> None:
    needed = runners_needed([smoke(6_000), TierDemand("batch", 40, 10, 6_000, 120.0)],
                            tokens_per_runner_s=100.0, cold_start_s=0.0, warm=0)
    assert needed == {"smoke": 1, "batch": 1}
    needed = runners_needed([smoke(6_000, target_s=30.0),
                             TierDemand("batch", 40, 10, 6_000, 30.0)],
                            tokens_per_runner_s=100.0, cold_start_s=0.0, warm=0)
    assert needed == {"smoke": 2, "batch": 4}


demands = st.lists(st.builds(
    TierDemand, tier=st.sampled_from(["online", "smoke", "batch"]),
    priority=st.sampled_from([100, 80, 40]), queued_requests=st.integers(0, 5000),
    queued_tokens=st.integers(0, 500_000), drain_target_s=st.floats(1, 7200),
    window_opens_in_s=st.one_of(st.none(), st.floats(0, 86_400))),
    max_size=3, unique_by=lambda d: d.tier)
configs = st.builds(AutoscaleConfig, min_runners=st.integers(0, 3),
                    max_runners=st.integers(3, 10), keep_warm_s=st.floats(0, 3600),
                    scale_to_zero=st.booleans(), cooldown_s=st.floats(0, 600))


@given(demand=demands, config=configs, warm=st.integers(0, 12), starting=st.integers(0, 4),
       rate=st.one_of(st.none(), st.floats(1, 5000)), cold=st.one_of(st.none(), st.floats(0, 300)),
       now=st.floats(0, 1e6))
def test_bounds_always_hold(demand: list[TierDemand], config: AutoscaleConfig, warm: int,
                            starting: int, rate: float | None, cold: float | None,
                            now: float) -> None:
    snapshot = PoolSnapshot(demand, {f"r{i}": 0.0 for i in range(warm)}, starting, rate, cold)
    decision, _ = decide(snapshot, AutoscaleState(), config, now=now)
    cold_s = 60.0 if cold is None else cold
    runnable = any(d.queued_requests for d in demand
                   if d.window_opens_in_s is None or d.window_opens_in_s <= cold_s)
    floor = 0 if config.scale_to_zero and not runnable else config.min_runners
    assert floor <= decision.desired <= config.max_runners
    assert decision.start == max(0, decision.desired - warm - starting)
    assert len(decision.stop) <= 1
    assert not (decision.start and decision.stop)
    if decision.stop:
        assert warm + starting - 1 >= decision.desired


@given(tokens=st.integers(0, 200_000), config=configs, cold=st.floats(0, 100),
       rate=st.floats(10, 1000))
def test_a_constant_load_settles_without_flapping(tokens: int, config: AutoscaleConfig,
                                                  cold: float, rate: float) -> None:
    # The pool follows its own decisions under a load that never changes: once settled, it
    # neither starts nor stops anything more.
    demand = [smoke(tokens, target_s=600.0)]
    warm: dict[str, float | None] = {}
    state, now, changes = AutoscaleState(), 0.0, []
    for step in range(60):
        decision, state = decide(PoolSnapshot(demand, warm, 0, rate, cold), state, config,
                                 now=now)
        for i in range(decision.start):
            warm[f"r{step}-{i}"] = now
        for rid in decision.stop:
            del warm[rid]
        changes.append(decision.start + len(decision.stop))
        now += 120.0
    assert sum(changes[-20:]) == 0


@pytest.mark.parametrize("cold", [0.0, 10.0, 30.0])
def test_scale_up_comes_before_the_target_is_missed(cold: float) -> None:
    # Work that a warm runner alone would finish late: the decision starts enough runners
    # that, after their cold start, the work is done within the target.
    target, rate = 60.0, 100.0
    for tokens in range(1000, 40_000, 1000):
        decision, _ = decide(pool([smoke(tokens, target_s=target)], cold=cold, rate=rate),
                             AutoscaleState(), replace(CONFIG, max_runners=100), now=0.0)
        capacity = target * rate + (decision.desired - 1) * (target - cold) * rate
        assert capacity >= tokens


def test_work_no_new_runner_can_finish_in_time_gets_runners_for_one_target_once_warm() -> None:
    # A cold start as long as the target: no new runner can meet it. Twenty seconds of work
    # takes one runner, not every runner allowed; a lot of work takes what drains it in one
    # target after the cold start.
    small, _ = decide(pool([smoke(2_000, target_s=120.0)], warm={}, cold=120.0, rate=100.0),
                      AutoscaleState(), CONFIG, now=0.0)
    assert small.desired == 1
    assert small.start == 1
    big, _ = decide(pool([smoke(30_000, target_s=120.0)], warm={}, cold=300.0, rate=100.0),
                    AutoscaleState(), replace(CONFIG, max_runners=100), now=0.0)
    assert big.desired == 3  # 300 runner-seconds of work over a 120 s target


def test_tier_demand_weighs_each_tiers_queue_as_the_controller_and_simulator_both_do() -> None:
    tiers = {"smoke": Tier("smoke", 80, drain_target_s=120.0),
             "nightly": Tier("nightly", 30, window=DispatchWindow(time(2), time(4), "UTC"))}
    demand = tier_demand({"smoke": 3, "nightly": 10, "gone": 5, "empty": 0}, tiers, 100.0,
                         now=datetime(2026, 12, 3, 1, 0, tzinfo=UTC).timestamp())
    assert demand == [TierDemand("nightly", 30, 10, 1000, 3600.0, 3600.0),
                      TierDemand("smoke", 80, 3, 300, 120.0, None)]
