"""The batch former: priority, age, full batches at once, partial ones after max_wait_ms."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.batching import BatchConfig, Dispatch, Wait, dispatch_order, plan_batch
from stoker.core.model import QueuedRequest


def q(rid: str, priority: int = 40, at: float = 0.0, seq: int = 0) -> QueuedRequest:
    return QueuedRequest(id=rid, priority=priority, enqueued_at=at, seq=seq)


def test_empty_queue_waits_without_deadline() -> None:
    assert plan_batch([], BatchConfig(16, 2000), now=5.0) == Wait(until=None)


def test_full_batch_goes_at_once() -> None:
    queued = [q(f"r{i}", at=10.0, seq=i) for i in range(4)]
    decision = plan_batch(queued, BatchConfig(4, 2000), now=10.0)
    assert decision == Dispatch(("r0", "r1", "r2", "r3"))


def test_partial_batch_waits_until_oldest_plus_max_wait() -> None:
    queued = [q("a", at=10.0), q("b", at=10.5, seq=1)]
    assert plan_batch(queued, BatchConfig(8, 2000), now=11.0) == Wait(until=12.0)


def test_partial_batch_goes_at_its_deadline() -> None:
    queued = [q("a", at=10.0), q("b", at=10.5, seq=1)]
    assert plan_batch(queued, BatchConfig(8, 2000), now=12.0) == Dispatch(("a", "b"))


def test_zero_wait_dispatches_partial_batch_immediately() -> None:
    assert plan_batch([q("a", at=3.0)], BatchConfig(8, 0), now=3.0) == Dispatch(("a",))


def test_higher_tier_first_then_oldest() -> None:
    queued = [
        q("batch-old", priority=40, at=1.0),
        q("smoke-new", priority=80, at=9.0, seq=3),
        q("smoke-old", priority=80, at=5.0, seq=2),
        q("online", priority=100, at=9.5, seq=4),
    ]
    decision = plan_batch(queued, BatchConfig(3, 1000), now=9.5)
    assert decision == Dispatch(("online", "smoke-old", "smoke-new"))


def test_submission_order_breaks_ties_within_one_timestamp() -> None:
    queued = [q("second", at=1.0, seq=2), q("first", at=1.0, seq=1)]
    assert [r.id for r in dispatch_order(queued)] == ["first", "second"]


@pytest.mark.parametrize(("size", "wait"), [(0, 10), (4, -1)])
def test_config_rejects_nonsense(size: int, wait: int) -> None:
    with pytest.raises(ValueError, match="max_"):
        BatchConfig(size, wait)


queued_requests = st.lists(
    st.builds(
        QueuedRequest,
        id=st.uuids().map(str),
        priority=st.sampled_from([20, 40, 60, 80, 100]),
        enqueued_at=st.floats(0, 1000, allow_nan=False),
        seq=st.integers(0, 10_000),
    ),
    max_size=60,
    unique_by=lambda r: r.id,
)
configs = st.builds(BatchConfig, max_batch_size=st.integers(1, 32),
                    max_wait_ms=st.integers(0, 10_000))


@given(queued_requests, configs, st.floats(0, 2000, allow_nan=False))
def test_a_full_batch_never_waits(queued: list[QueuedRequest], config: BatchConfig,
                                  now: float) -> None:
    decision = plan_batch(queued, config, now=now)
    if len(queued) >= config.max_batch_size:
        assert isinstance(decision, Dispatch)
        assert len(decision.request_ids) == config.max_batch_size


@given(queued_requests, configs, st.floats(0, 2000, allow_nan=False))
def test_dispatch_takes_the_head_of_the_order(queued: list[QueuedRequest], config: BatchConfig,
                                              now: float) -> None:
    decision = plan_batch(queued, config, now=now)
    if isinstance(decision, Dispatch):
        head = [r.id for r in dispatch_order(queued)][: len(decision.request_ids)]
        assert list(decision.request_ids) == head
        assert len(decision.request_ids) <= config.max_batch_size


@given(queued_requests, configs, st.floats(0, 2000, allow_nan=False))
def test_partial_batch_waits_at_most_max_wait_from_oldest(
    queued: list[QueuedRequest], config: BatchConfig, now: float
) -> None:
    decision = plan_batch(queued, config, now=now)
    if queued and len(queued) < config.max_batch_size:
        deadline = min(r.enqueued_at for r in queued) + config.max_wait_ms / 1000
        if now >= deadline:
            assert isinstance(decision, Dispatch)
            assert len(decision.request_ids) == len(queued)
        else:
            assert decision == Wait(until=deadline)


@given(queued_requests, configs, st.floats(0, 2000, allow_nan=False), st.randoms())
def test_decision_does_not_depend_on_input_order(queued: list[QueuedRequest],
                                                 config: BatchConfig, now: float,
                                                 rnd: object) -> None:
    shuffled = list(queued)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan_batch(queued, config, now=now) == plan_batch(shuffled, config, now=now)


@given(queued_requests, configs, st.floats(0, 2000, allow_nan=False))
def test_no_higher_priority_request_is_skipped(queued: list[QueuedRequest], config: BatchConfig,
                                               now: float) -> None:
    decision = plan_batch(queued, config, now=now)
    if isinstance(decision, Dispatch):
        chosen = set(decision.request_ids)
        lowest = min(r.priority for r in queued if r.id in chosen)
        left_out = [r for r in queued if r.id not in chosen]
        assert all(r.priority <= lowest for r in left_out)
