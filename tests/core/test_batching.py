"""The batch former: strict priority across tiers, fair share across teams, windows,
anti-starvation, full batches at once, partial ones after max_wait_ms."""

from __future__ import annotations

from datetime import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.batching import (
    BatchConfig,
    BatchDecision,
    Dispatch,
    Pick,
    SchedulingPolicy,
    Wait,
    plan_batch,
)
from stoker.core.fair_share import FairShareState
from stoker.core.model import QueueGroup, Tier
from stoker.core.tiers import DEFAULT_TIERS
from stoker.core.windows import DispatchWindow

TIERS = {t.name: t for t in DEFAULT_TIERS}
POLICY = SchedulingPolicy(tiers=TIERS)


def plan(groups: list[QueueGroup], config: BatchConfig, policy: SchedulingPolicy, *,
         now: float) -> BatchDecision:
    """One batch decision with no history of earlier batches."""
    return plan_batch(groups, FairShareState(), config, policy, now=now)[0]


def g(tier: str = "batch", team: str = "a", queued: int = 1, head: float = 0.0) -> QueueGroup:
    return QueueGroup(tier, team, queued, head)


def test_empty_queue_waits_without_deadline() -> None:
    assert plan([], BatchConfig(16, 2000), POLICY, now=5.0) == Wait(until=None)


def test_full_batch_goes_at_once() -> None:
    decision = plan([g(queued=40, head=10.0)], BatchConfig(4, 2000), POLICY, now=10.0)
    assert decision == Dispatch((Pick("batch", "a", 4),))


def test_partial_batch_waits_until_oldest_plus_max_wait() -> None:
    groups = [g(team="a", head=10.0), g(team="b", head=10.5)]
    assert plan(groups, BatchConfig(8, 2000), POLICY, now=11.0) == Wait(until=12.0)


def test_partial_batch_goes_at_its_deadline() -> None:
    groups = [g(team="a", head=10.0), g(team="b", head=10.5)]
    decision = plan(groups, BatchConfig(8, 2000), POLICY, now=12.0)
    assert decision == Dispatch((Pick("batch", "a", 1), Pick("batch", "b", 1)))


def test_higher_tier_first() -> None:
    groups = [g("batch", queued=10, head=1.0), g("smoke", queued=2, head=9.0),
              g("online", queued=1, head=9.5)]
    decision = plan(groups, BatchConfig(4, 1000), POLICY, now=9.5)
    assert decision == Dispatch((Pick("online", "a", 1), Pick("smoke", "a", 2),
                                 Pick("batch", "a", 1)))


def test_a_flood_does_not_crowd_out_a_team_with_one_request() -> None:
    groups = [g(team="flood", queued=4000, head=0.0), g(team="small", queued=1, head=50.0)]
    decision = plan(groups, BatchConfig(16, 0), POLICY, now=60.0)
    assert isinstance(decision, Dispatch)
    assert {p.team: p.count for p in decision.picks} == {"flood": 15, "small": 1}


def test_weights_split_a_batch() -> None:
    policy = SchedulingPolicy(tiers=TIERS, team_weights={"big": 3.0, "small": 1.0})
    groups = [g(team="big", queued=100), g(team="small", queued=100)]
    decision = plan(groups, BatchConfig(16, 0), policy, now=1.0)
    assert isinstance(decision, Dispatch)
    assert {p.team: p.count for p in decision.picks} == {"big": 12, "small": 4}


def test_starved_group_is_promoted_up_to_the_ceiling() -> None:
    policy = SchedulingPolicy(tiers=TIERS, starvation_age_s=600, starvation_ceiling=80)
    groups = [g("smoke", team="ci", queued=100, head=990.0),
              g("best_effort", team="old", queued=5, head=0.0)]
    decision = plan(groups, BatchConfig(16, 0), policy, now=1000.0)
    assert isinstance(decision, Dispatch)
    assert {p.team: p.count for p in decision.picks} == {"ci": 11, "old": 5}


def test_starved_group_never_beats_online() -> None:
    policy = SchedulingPolicy(tiers=TIERS, starvation_age_s=600, starvation_ceiling=80)
    groups = [g("online", team="app", queued=20, head=999.0),
              g("best_effort", team="old", queued=5, head=0.0)]
    decision = plan(groups, BatchConfig(16, 0), policy, now=1000.0)
    assert decision == Dispatch((Pick("online", "app", 16),))


NIGHT = DispatchWindow(time(20, 0), time(8, 0), "UTC")
NOON = 12 * 3600.0
MIDNIGHT = 24 * 3600.0


def test_out_of_window_tier_waits_while_others_run() -> None:
    tiers = {**TIERS, "regression": Tier("regression", 60, window=NIGHT)}
    policy = SchedulingPolicy(tiers=tiers)
    groups = [g("regression", queued=50), g("batch", queued=2)]
    decision = plan(groups, BatchConfig(16, 0), policy, now=NOON)
    assert decision == Dispatch((Pick("batch", "a", 2),))
    decision = plan(groups, BatchConfig(16, 0), policy, now=MIDNIGHT)
    assert decision == Dispatch((Pick("regression", "a", 16),))


def test_out_of_window_tier_waits_even_when_idle_unless_allowed() -> None:
    closed = {**TIERS, "regression": Tier("regression", 60, window=NIGHT)}
    groups = [g("regression", queued=50)]
    assert plan(groups, BatchConfig(16, 0), SchedulingPolicy(tiers=closed),
                      now=NOON) == Wait(until=None)
    idle_ok = {**TIERS, "regression": Tier("regression", 60, window=NIGHT,
                                           run_outside_window_when_idle=True)}
    decision = plan(groups, BatchConfig(16, 0), SchedulingPolicy(tiers=idle_ok), now=NOON)
    assert decision == Dispatch((Pick("regression", "a", 16),))


def test_window_in_a_time_zone() -> None:
    tokyo = DispatchWindow(time(9, 0), time(17, 0), "Asia/Tokyo")
    assert tokyo.contains(3 * 3600.0)  # 03:00 UTC is 12:00 in Tokyo
    assert not tokyo.contains(NOON)  # 12:00 UTC is 21:00 in Tokyo


@pytest.mark.parametrize(("size", "wait"), [(0, 10), (4, -1)])
def test_config_rejects_nonsense(size: int, wait: int) -> None:
    with pytest.raises(ValueError, match="max_"):
        BatchConfig(size, wait)


groups_strategy = st.lists(
    st.builds(QueueGroup, tier=st.sampled_from(list(TIERS)),
              team=st.sampled_from(["a", "b", "c", "d", "e"]),
              queued=st.integers(0, 50), head_enqueued_at=st.floats(0, 1000, allow_nan=False)),
    max_size=12, unique_by=lambda x: (x.tier, x.team),
)
configs = st.builds(BatchConfig, max_batch_size=st.integers(1, 32),
                    max_wait_ms=st.integers(0, 10_000))
policies = st.builds(
    SchedulingPolicy, tiers=st.just(TIERS),
    team_weights=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0.1, 10)),
    starvation_age_s=st.one_of(st.none(), st.floats(1, 2000)),
    starvation_ceiling=st.one_of(st.none(), st.sampled_from([40, 80])),
)
nows = st.floats(0, 3000, allow_nan=False)


@given(groups_strategy, configs, policies, nows)
def test_a_full_batch_never_waits_and_never_overflows(groups: list[QueueGroup],
                                                     config: BatchConfig,
                                                     policy: SchedulingPolicy,
                                                     now: float) -> None:
    decision = plan(groups, config, policy, now=now)
    total = sum(x.queued for x in groups)
    if total >= config.max_batch_size:
        assert isinstance(decision, Dispatch)
        assert decision.size == config.max_batch_size
    if isinstance(decision, Dispatch):
        assert decision.size <= min(total, config.max_batch_size)
        queued = {(x.tier, x.team): x.queued for x in groups}
        assert all(0 < p.count <= queued[(p.tier, p.team)] for p in decision.picks)


@given(groups_strategy, configs, policies, nows)
def test_partial_batch_waits_at_most_max_wait_from_oldest(groups: list[QueueGroup],
                                                         config: BatchConfig,
                                                         policy: SchedulingPolicy,
                                                         now: float) -> None:
    live = [x for x in groups if x.queued]
    total = sum(x.queued for x in live)
    decision = plan(groups, config, policy, now=now)
    if live and total < config.max_batch_size:
        deadline = min(x.head_enqueued_at for x in live) + config.max_wait_ms / 1000
        if now >= deadline:
            assert isinstance(decision, Dispatch)
            assert decision.size == total
        else:
            assert decision == Wait(until=deadline)


@given(groups_strategy, configs, nows)
def test_strict_priority_without_starvation(groups: list[QueueGroup], config: BatchConfig,
                                            now: float) -> None:
    decision = plan(groups, config, POLICY, now=now)
    if isinstance(decision, Dispatch):
        chosen = {(p.tier, p.team): p.count for p in decision.picks}
        lowest = min(TIERS[t].priority for t, _ in chosen)
        for x in groups:
            if TIERS[x.tier].priority > lowest:
                assert chosen.get((x.tier, x.team), 0) == x.queued  # higher tiers fully served


@given(groups_strategy, st.integers(1, 32), nows)
def test_every_team_at_the_top_level_gets_a_slot_when_slots_suffice(
        groups: list[QueueGroup], size: int, now: float) -> None:
    decision = plan(groups, BatchConfig(size, 0), POLICY, now=now)
    live = [x for x in groups if x.queued]
    if not live:
        return
    top = max(TIERS[x.tier].priority for x in live)
    top_groups = [x for x in live if TIERS[x.tier].priority == top]
    if isinstance(decision, Wait):
        assert sum(x.queued for x in live) < size  # only a partial batch may wait
        return
    if len(top_groups) <= size:
        served = {(p.tier, p.team) for p in decision.picks}
        assert all((x.tier, x.team) in served for x in top_groups)


@given(groups_strategy, configs, policies, nows, st.randoms())
def test_decision_does_not_depend_on_input_order(groups: list[QueueGroup], config: BatchConfig,
                                                 policy: SchedulingPolicy, now: float,
                                                 rnd: object) -> None:
    shuffled = list(groups)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan(groups, config, policy, now=now) == plan(shuffled, config, policy,
                                                                     now=now)


def _run_batches(groups: dict[str, int], weights: dict[str, float], size: int,
                 batches: int, *, joins: dict[int, tuple[str, int]] | None = None
                 ) -> list[dict[str, int]]:
    """Plan ``batches`` consecutive batches of one tier, carrying the fair-share state and
    taking each batch's picks out of the queue; ``joins[i]`` adds a team before batch i."""
    policy = SchedulingPolicy(tiers=TIERS, team_weights=weights)
    queued = dict(groups)
    heads = dict.fromkeys(groups, 0.0)
    share = FairShareState()
    served: list[dict[str, int]] = []
    for i in range(batches):
        if joins and i in joins:
            team, n = joins[i]
            queued[team], heads[team] = n, float(i)
        live = [g(team=t, queued=n, head=heads[t]) for t, n in queued.items() if n > 0]
        decision, share = plan_batch(live, share, BatchConfig(size, 0), policy, now=1e6)
        got = {p.team: p.count for p in decision.picks} if isinstance(decision, Dispatch) else {}
        for team, n in got.items():
            queued[team] -= n
        served.append(got)
    return served


@pytest.mark.parametrize(("weights", "size"), [((2.0, 1.0), 1), ((100.0, 1.0), 8),
                                                ((1000.0, 0.001), 1)])
def test_a_lighter_team_with_one_request_is_served_within_about_one_batch(
        weights: tuple[float, float], size: int) -> None:
    served = _run_batches({"heavy": 100_000}, {"heavy": weights[0], "light": weights[1]},
                          size, 50, joins={10: ("light", 1)})
    first = next(i for i, got in enumerate(served) if "light" in got)
    assert first <= 11  # the batch it arrived for, or the next


def test_over_many_batches_shares_follow_the_weights() -> None:
    served = _run_batches({"a": 100_000, "b": 100_000}, {"a": 2.0, "b": 1.0}, 1, 300)
    a = sum(got.get("a", 0) for got in served)
    assert abs(a - 200) <= 1  # two batches in three, not all of them


@given(weights=st.lists(st.floats(0.001, 1000), min_size=2, max_size=6),
       size=st.integers(1, 16), join_at=st.integers(0, 30), light=st.floats(0.001, 1000))
def test_a_joining_team_is_served_within_a_round_whatever_the_weights(
        weights: list[float], size: int, join_at: int, light: float) -> None:
    teams = {f"t{i}": 10_000 for i in range(len(weights))}
    served = _run_batches(teams, {**{f"t{i}": w for i, w in enumerate(weights)}, "new": light},
                          size, join_at + 10, joins={join_at: ("new", 1)})
    first = next(i for i, got in enumerate(served) if "new" in got)
    # Each team already waiting takes at most one slot before it.
    assert first - join_at <= -(-len(teams) // size)


@given(weights=st.lists(st.floats(0.1, 10), min_size=2, max_size=5),
       size=st.integers(1, 16), batches=st.integers(20, 120))
def test_backlogged_teams_get_their_weighted_share_over_many_batches(
        weights: list[float], size: int, batches: int) -> None:
    teams = {f"t{i}": 1_000_000 for i in range(len(weights))}
    served = _run_batches(teams, {f"t{i}": w for i, w in enumerate(weights)}, size, batches)
    total = size * batches
    for i, w in enumerate(weights):
        got = sum(b.get(f"t{i}", 0) for b in served)
        assert abs(got - total * w / sum(weights)) <= len(weights)


def test_promotion_never_goes_above_online_whatever_the_tiers() -> None:
    tiers = {**TIERS, "critical": Tier("critical", 150)}
    policy = SchedulingPolicy(tiers=tiers, starvation_age_s=600)
    groups = [g("critical", team="ops", queued=20, head=999.0),
              g("online", team="app", queued=20, head=999.0),
              g("best_effort", team="old", queued=5, head=0.0)]
    decision = plan(groups, BatchConfig(16, 0), policy, now=1000.0)
    assert decision == Dispatch((Pick("critical", "ops", 16),))
    decision = plan(groups[1:], BatchConfig(16, 0), policy, now=1000.0)
    assert isinstance(decision, Dispatch)
    assert {p.team: p.count for p in decision.picks} == {"app": 11, "old": 5}
