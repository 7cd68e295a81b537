"""Continuous batching's asks: fill up to max_batch_size, online headroom past it, and what the
batch policy hands out for each."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stoker.core.batching import BatchConfig, Dispatch, Pick, SchedulingPolicy, Wait
from stoker.core.continuous import LoopConfig, TopUp, plan_fill, plan_headroom, plan_top_up
from stoker.core.fair_share import FairShareState
from stoker.core.model import QueueGroup
from stoker.core.tiers import DEFAULT_TIERS

POLICY = SchedulingPolicy(tiers={t.name: t for t in DEFAULT_TIERS})
BATCH = BatchConfig(max_batch_size=16, max_wait_ms=200)


def top_up(groups: list[QueueGroup], ask: TopUp, *, now: float = 10.0) -> Dispatch | Wait:
    return plan_top_up(groups, FairShareState(), ask, BATCH, POLICY, now=now)[0]


def test_fill_asks_for_the_free_slots_and_nothing_when_full() -> None:
    config = LoopConfig(max_batch_size=16, online_headroom_rows=4)
    assert plan_fill(0, config) == TopUp(16, online_only=False, loop_running=False)
    assert plan_fill(13, config) == TopUp(3, online_only=False, loop_running=True)
    assert plan_fill(16, config) is None


def test_headroom_is_online_only_and_bounded_past_the_batch_size() -> None:
    config = LoopConfig(max_batch_size=16, online_headroom_rows=4)
    assert plan_headroom(16, config) == TopUp(4, online_only=True, loop_running=True)
    assert plan_headroom(18, config) == TopUp(2, online_only=True, loop_running=True)
    assert plan_headroom(20, config) is None
    assert plan_headroom(0, LoopConfig(max_batch_size=16)) is None


@given(st.integers(0, 64), st.integers(1, 32), st.integers(0, 8))
def test_fill_and_headroom_together_never_exceed_their_bound(in_flight: int, size: int,
                                                             room: int) -> None:
    config = LoopConfig(max_batch_size=size, online_headroom_rows=room)
    fill, head = plan_fill(in_flight, config), plan_headroom(in_flight, config)
    granted = (fill.max_rows if fill else 0) + (head.max_rows if head else 0)
    # Both asks may be granted at once: the loop still stays within size + headroom.
    assert in_flight + granted <= max(in_flight, size + room)


def test_a_running_loop_takes_a_partial_batch_at_once() -> None:
    groups = [QueueGroup("batch", "a", 2, head_enqueued_at=9.99)]
    # An empty loop waits for a fuller batch, as a static one would ...
    assert isinstance(top_up(groups, TopUp(16, False, loop_running=False)), Wait)
    # ... a running one does not: every step it waits is a slot decoding nothing.
    assert top_up(groups, TopUp(5, False, loop_running=True)) == Dispatch(
        (Pick("batch", "a", 2),))


def test_a_top_up_takes_no_more_than_it_asked_for_by_priority() -> None:
    groups = [QueueGroup("batch", "a", 50, 1.0), QueueGroup("online", "b", 2, 5.0)]
    decision = top_up(groups, TopUp(3, False, loop_running=True))
    assert decision == Dispatch((Pick("online", "b", 2), Pick("batch", "a", 1)))


def test_headroom_takes_only_online_work() -> None:
    batch_only = [QueueGroup("batch", "a", 50, 1.0)]
    assert isinstance(top_up(batch_only, TopUp(4, True, loop_running=True)), Wait)
    mixed = [*batch_only, QueueGroup("online", "b", 1, 9.0)]
    assert top_up(mixed, TopUp(4, True, loop_running=True)) == Dispatch(
        (Pick("online", "b", 1),))


def test_headroom_without_an_online_tier_takes_nothing() -> None:
    policy = SchedulingPolicy(tiers={t.name: t for t in DEFAULT_TIERS if t.name != "online"})
    decision, _ = plan_top_up([QueueGroup("smoke", "a", 3, 1.0)], FairShareState(),
                              TopUp(4, True, True), BATCH, policy, now=10.0)
    assert isinstance(decision, Wait)
