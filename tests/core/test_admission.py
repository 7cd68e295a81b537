"""Admission control: quotas, the token bucket and the circuit breaker."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.admission import (
    DAY_S,
    AdmissionState,
    Admit,
    BreakerConfig,
    RateLimits,
    Refuse,
    TeamLoad,
    TeamQuota,
    admit,
    initial_state,
    rate_limits,
)

IDLE = TeamLoad(queued=0, tokens_today=0)


def run(requests: int, quota: TeamQuota, *, load: TeamLoad = IDLE,
        state: AdmissionState | None = None, breaker: BreakerConfig | None = None,
        now: float = 1000.0) -> tuple[Admit | Refuse, AdmissionState]:
    return admit(requests, load, state or initial_state(quota, now=now), quota, breaker,
                 team="evals", now=now)


def test_no_quota_admits_anything() -> None:
    decision, _ = run(10**6, TeamQuota())
    assert decision == Admit()


def test_max_queued_requests() -> None:
    quota = TeamQuota(max_queued_requests=100)
    assert run(10, quota, load=TeamLoad(90, 0))[0] == Admit()
    decision, _ = run(11, quota, load=TeamLoad(90, 0))
    assert isinstance(decision, Refuse)
    assert decision.quota == "max_queued_requests"
    assert "max_queued_requests quota of 100" in decision.message
    assert not decision.permanent
    too_big, _ = run(101, quota)
    assert isinstance(too_big, Refuse)
    assert too_big.permanent


def test_tokens_per_day_resets_at_midnight_utc() -> None:
    decision, _ = run(1, TeamQuota(tokens_per_day=500), load=TeamLoad(0, 500),
                      now=86_400 * 3 + 3600)
    assert isinstance(decision, Refuse)
    assert decision.quota == "tokens_per_day"
    assert decision.retry_after_s == 23 * 3600


def test_bucket_refills_at_the_per_minute_rate() -> None:
    quota = TeamQuota(requests_per_minute=60)
    decision, state = run(60, quota, now=0.0)
    assert decision == Admit()
    refused, state = run(1, quota, state=state, now=0.0)
    assert isinstance(refused, Refuse)
    assert refused.retry_after_s == 1.0
    admitted, state = run(10, quota, state=state, now=10.0)
    assert admitted == Admit()
    assert state.bucket == 0.0


def test_a_job_larger_than_the_bucket_can_never_pass() -> None:
    decision, _ = run(61, TeamQuota(requests_per_minute=60))
    assert isinstance(decision, Refuse)
    assert decision.permanent


BREAKER = BreakerConfig(max_submissions=3, window_s=10, cooldown_s=60)


def test_breaker_trips_then_cools_down() -> None:
    state = initial_state(TeamQuota(), now=0.0)
    for t in range(3):
        decision, state = run(1, TeamQuota(), state=state, breaker=BREAKER, now=float(t))
        assert decision == Admit()
    tripped, state = run(1, TeamQuota(), state=state, breaker=BREAKER, now=3.0)
    assert isinstance(tripped, Refuse)
    assert tripped.quota == "circuit_breaker"
    assert tripped.retry_after_s == 60.0
    still, state = run(1, TeamQuota(), state=state, breaker=BREAKER, now=50.0)
    assert isinstance(still, Refuse)
    assert still.retry_after_s == 13.0
    cooled, _ = run(1, TeamQuota(), state=state, breaker=BREAKER, now=63.0)
    assert cooled == Admit()


def test_breaker_window_slides_forward() -> None:
    state = initial_state(TeamQuota(), now=0.0)
    for t in (0.0, 1.0, 2.0, 11.0, 12.0, 13.0):
        decision, state = run(1, TeamQuota(), state=state, breaker=BREAKER, now=t)
        assert decision == Admit()


def test_a_client_that_obeys_retry_after_is_admitted_when_the_cooldown_ends() -> None:
    # Max 2 per 60 s, cooldown 10 s: the window must start again on the trip, or a client
    # waiting out each Retry-After is refused until the 60 s window has passed.
    breaker = BreakerConfig(max_submissions=2, window_s=60, cooldown_s=10)
    state = initial_state(TeamQuota(), now=0.0)
    now, admitted, refused = 0.0, 0, 0
    while now < 40.0:
        decision, state = run(1, TeamQuota(), state=state, breaker=breaker, now=now)
        if isinstance(decision, Refuse):
            assert decision.retry_after_s <= 10.0
            refused += 1
            now += decision.retry_after_s
        else:
            admitted += 1
            now += 0.5
    # Each 11 s cycle: two admitted, one refused, then ten seconds of cooldown.
    assert (admitted, refused) == (8, 4)


@given(st.lists(st.floats(0, 20), min_size=1, max_size=60), st.integers(1, 5),
       st.floats(1, 60), st.floats(1, 60))
def test_the_first_submission_after_retry_after_is_admitted(
        gaps: list[float], most: int, window_s: float, cooldown_s: float) -> None:
    breaker = BreakerConfig(max_submissions=most, window_s=window_s, cooldown_s=cooldown_s)
    state = initial_state(TeamQuota(), now=0.0)
    now, free_at = 0.0, None
    for gap in gaps:
        now += gap
        decision, state = run(1, TeamQuota(), state=state, breaker=breaker, now=now)
        if free_at is not None and now >= free_at:
            assert decision == Admit()
            free_at = None
        if isinstance(decision, Refuse):
            assert 0 < decision.retry_after_s <= cooldown_s + 1e-9
            free_at = now + decision.retry_after_s if free_at is None else free_at


@given(st.lists(st.tuples(st.integers(1, 30), st.floats(0, 5)), max_size=40),
       st.integers(1, 120))
def test_bucket_never_admits_more_than_rate_allows(steps: list[tuple[int, float]],
                                                   per_minute: int) -> None:
    quota = TeamQuota(requests_per_minute=per_minute)
    now = 0.0
    state = initial_state(quota, now=now)
    admitted = 0
    for size, gap in steps:
        now += gap
        decision, state = admit(size, IDLE, state, quota, None, team="t", now=now)
        assert 0.0 <= state.bucket <= per_minute
        if decision == Admit():
            admitted += size
    assert admitted <= per_minute + now * per_minute / 60 + 1e-6


def test_rate_limits_report_the_bucket_and_the_days_tokens() -> None:
    quota = TeamQuota(requests_per_minute=60, tokens_per_day=1000)
    fresh = rate_limits(quota, TeamLoad(0, 250), None, now=DAY_S * 3 + 3600)
    assert (fresh.limit_requests, fresh.remaining_requests, fresh.reset_requests_s) == \
        (60, 60, 0.0)
    assert (fresh.limit_tokens, fresh.remaining_tokens, fresh.reset_tokens_s) == \
        (1000, 750, DAY_S - 3600)
    # 45 of 60 left 5 s ago, refilling at one a second: 50 now, 10 s until full.
    used = AdmissionState(bucket=45.0, bucket_at=95.0, window_start=0.0,
                          window_submissions=0, tripped_until=0.0)
    now = rate_limits(quota, TeamLoad(0, 5000), used, now=100.0)
    assert (now.remaining_requests, now.reset_requests_s) == (50, pytest.approx(10.0))
    assert now.remaining_tokens == 0
    assert rate_limits(TeamQuota(), TeamLoad(0, 0), None, now=1.0) == RateLimits()
