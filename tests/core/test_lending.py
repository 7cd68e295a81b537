"""The lending policy: headroom, the calm delay, stepwise loans, immediate reclaim, and the
floor that keeps the online service up."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stoker.core.lending import (
    LendingConfig,
    LendingState,
    OnlineReserve,
    ReplicaLoad,
    latency_over_target,
    may_lend_runner,
    online_latencies,
    plan_lending,
    replicas_needed,
    withdraw_unknown,
)

CONFIG = LendingConfig(requests_per_replica=10, headroom=0.25, min_serving_replicas=1,
                       lend_delay_s=300, lend_step=2)


def fleet(*running: float) -> list[ReplicaLoad]:
    return [ReplicaLoad(f"r{i}", running=r) for i, r in enumerate(running)]


def test_needed_replicas_carry_the_headroom_and_never_fall_below_the_floor() -> None:
    assert replicas_needed(0, CONFIG) == 1
    assert replicas_needed(8, CONFIG) == 1    # 8 x 1.25 = 10
    assert replicas_needed(9, CONFIG) == 2
    assert replicas_needed(40, CONFIG) == 5


def test_nothing_is_lent_until_the_load_has_been_calm_for_the_delay() -> None:
    replicas = fleet(2, 1, 0, 0)
    decision, state = plan_lending(replicas, LendingState(), CONFIG, now=0.0)
    assert decision.lend == ()
    assert state.calm_since == 0.0
    decision, state = plan_lending(replicas, state, CONFIG, now=299.0)
    assert decision.lend == ()
    decision, state = plan_lending(replicas, state, CONFIG, now=300.0)
    assert decision.lend == ("r2", "r3")  # the quietest, lend_step at a time
    assert decision.reason == "idle"
    assert state.lent == ("r2", "r3")
    # The next step waits for another calm delay.
    decision, state = plan_lending(replicas, state, CONFIG, now=301.0)
    assert decision.lend == ()
    decision, state = plan_lending(replicas, state, CONFIG, now=600.0)
    assert decision.lend == ("r1",)  # load 3 needs one replica: r0 keeps serving
    assert state.lent == ("r2", "r3", "r1")


def test_a_rise_in_load_takes_back_newest_loans_at_once() -> None:
    state = LendingState(lent=("r1", "r2", "r3"))
    busy = [ReplicaLoad("r0", running=25), *fleet(0, 0, 0, 0)[1:]]
    decision, state = plan_lending(busy, state, CONFIG, now=10.0)
    assert decision.needed == 4  # 25 x 1.25 / 10
    assert (decision.reclaim, decision.reason) == (("r3", "r2", "r1"), "load")
    assert state == LendingState(lent=(), calm_since=None)


def test_requests_waiting_or_a_full_kv_cache_reclaim_one_more_replica() -> None:
    state = LendingState(lent=("r2", "r3"), calm_since=5.0)
    waiting = [ReplicaLoad("r0", running=3, waiting=2), ReplicaLoad("r1", running=1),
               ReplicaLoad("r2"), ReplicaLoad("r3")]
    decision, after = plan_lending(waiting, state, CONFIG, now=10.0)
    assert (decision.reclaim, decision.reason) == (("r3",), "pressure")
    assert "r0 has 2 requests waiting" in decision.detail
    assert after == LendingState(lent=("r2",), calm_since=None)
    full = [ReplicaLoad("r0", running=1, kv_cache_usage=0.95), ReplicaLoad("r1"),
            ReplicaLoad("r2"), ReplicaLoad("r3")]
    decision, _ = plan_lending(full, state, CONFIG, now=10.0)
    assert decision.reclaim == ("r3",)
    assert "KV cache 95% full" in decision.detail


def test_an_unreachable_replica_is_neither_lent_nor_counted() -> None:
    replicas = [ReplicaLoad("r0", running=9), ReplicaLoad("r1", reachable=False),
                ReplicaLoad("r2")]
    decision, _ = plan_lending(replicas, LendingState(calm_since=0.0), CONFIG, now=1000.0)
    assert decision.serving == 2
    assert decision.lend == ()  # load 9 needs 2: r0 and r2 both serve; r1 is not lent


def test_a_fleet_at_its_size_resets_the_calm_clock() -> None:
    decision, state = plan_lending(fleet(8, 9), LendingState(calm_since=0.0), CONFIG,
                                   now=1000.0)
    assert (decision.needed, decision.lend, decision.reclaim) == (3, (), ())
    assert state.calm_since is None


def test_loans_of_replicas_that_left_the_fleet_are_forgotten() -> None:
    assert withdraw_unknown(LendingState(lent=("r1", "gone")), ["r0", "r1"]).lent == ("r1",)


@given(st.lists(st.tuples(st.floats(0, 50), st.floats(0, 5), st.floats(0, 1), st.booleans()),
                min_size=1, max_size=12),
       st.integers(0, 11), st.floats(0, 2000))
def test_lending_never_leaves_fewer_serving_than_the_floor_or_the_load_needs(
        loads: list[tuple[float, float, float, bool]], lent_count: int, now: float) -> None:
    replicas = [ReplicaLoad(f"r{i}", running, waiting, kv, reachable)
                for i, (running, waiting, kv, reachable) in enumerate(loads)]
    lent = tuple(r.name for r in replicas[:min(lent_count, len(replicas) - 1)])
    decision, state = plan_lending(replicas, LendingState(lent, 0.0), CONFIG, now=now)
    serving_after = [r for r in replicas if r.reachable and r.name not in state.lent]
    assert set(decision.lend).isdisjoint(decision.reclaim)
    if decision.lend:
        demand = sum(r.running + r.waiting for r in serving_after)
        assert len(serving_after) >= max(CONFIG.min_serving_replicas,
                                         replicas_needed(decision.demand, CONFIG))
        assert demand <= decision.demand


def test_spare_replicas_keep_a_band_between_lending_and_taking_back() -> None:
    config = LendingConfig(requests_per_replica=10, lend_delay_s=0, spare_replicas=1)
    # Load 8 needs one replica; with one spare, two of four keep serving.
    decision, state = plan_lending(fleet(4, 4, 0, 0), LendingState(), config, now=0.0)
    assert decision.lend == ("r2",)
    decision, state = plan_lending(fleet(4, 4, 0, 0), state, config, now=1.0)
    assert decision.lend == ("r3",)
    decision, state = plan_lending(fleet(4, 4, 0, 0), state, config, now=2.0)
    assert decision.lend == ()
    # A little more load (needs two) is inside the band: nothing is taken back.
    decision, _ = plan_lending(fleet(6, 6, 0, 0), state, config, now=3.0)
    assert (decision.needed, decision.reclaim, decision.lend) == (2, (), ())


def test_an_online_reserve_keeps_runners_or_a_fraction_free() -> None:
    keep_one = OnlineReserve(runners=1)
    assert may_lend_runner(2, 0, already_lent=False, reserve=keep_one)
    assert not may_lend_runner(2, 1, already_lent=False, reserve=keep_one)
    assert may_lend_runner(2, 1, already_lent=True, reserve=keep_one)  # topping up its rows
    half = OnlineReserve(fraction=0.5)
    assert [half.size(w) for w in (0, 1, 3, 4)] == [0, 1, 2, 2]
    assert may_lend_runner(4, 1, already_lent=False, reserve=half)
    assert not may_lend_runner(4, 2, already_lent=False, reserve=half)
    assert OnlineReserve(runners=3, fraction=0.25).size(4) == 3


def test_online_latency_counts_open_requests_as_waiting_so_far() -> None:
    assert online_latencies([(10.0, 10.5), (11.0, None)], now=14.0) == [0.5, 3.0]


@given(st.lists(st.floats(0, 100), min_size=3, max_size=50), st.floats(0.1, 100))
def test_latency_is_over_target_when_more_than_a_tenth_of_requests_are_past_it(
        latencies: list[float], target: float) -> None:
    past = sum(1 for x in latencies if x > target)
    over = latency_over_target(latencies, target)
    assert over == (past > len(latencies) - math.ceil(0.9 * len(latencies)))


def test_too_few_online_requests_say_nothing_about_latency() -> None:
    assert not latency_over_target([100.0, 100.0], 1.0)
    assert latency_over_target([100.0, 100.0, 100.0], 1.0)
