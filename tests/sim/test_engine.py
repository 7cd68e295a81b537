"""The simulated queue and pool: closed-form checks, and the live policies at work."""

from __future__ import annotations

import random
import statistics

import pytest

from stoker.core.admission import TeamQuota
from stoker.core.autoscale import AutoscaleConfig
from stoker.core.model import RunnerState
from stoker.sim.engine import simulate
from stoker.sim.results import summarize
from tests.sim.conftest import config, job, pool, waits


def test_an_m_d_1_queue_waits_what_the_pollaczek_khinchine_formula_says() -> None:
    """Poisson arrivals at rate λ, one runner, a deterministic service time D, no batching:
    the mean queue wait is rho D / (2 (1 - rho)), rho = λD."""
    rng = random.Random(20261203)
    rate, service_s = 0.5, 1.0  # ten tokens at 0.1 s a step
    at, trace = 0.0, []
    for _ in range(30_000):
        at += rng.expovariate(rate)
        trace.append(job(at))
    outcome = simulate(trace, config(pool()))
    rho = rate * service_s
    expected = rho * service_s / (2 * (1 - rho))
    assert statistics.mean(waits(outcome.requests)) == pytest.approx(expected, rel=0.05)


def test_without_batching_one_runner_does_one_request_per_service_time() -> None:
    trace = [job(0.0) for _ in range(200)]  # all at once: the runner never waits
    outcome = simulate(trace, config(pool()))
    assert len(outcome.requests) == 200
    assert 200 / (outcome.until - outcome.since) == pytest.approx(1 / 1.0, rel=1e-9)
    assert {b.size for b in outcome.records.batches} == {1}


def test_a_lone_request_waits_max_wait_ms_for_company_and_a_full_batch_goes_at_once() -> None:
    trace = [job(0.0), *[job(10.0) for _ in range(8)]]
    outcome = simulate(trace, config(pool(max_batch_size=8, max_wait_ms=500)))
    assert sorted(waits(outcome.requests)) == pytest.approx([0.0] * 8 + [0.5])
    assert sorted(b.size for b in outcome.records.batches) == [1, 8]


def test_a_higher_tier_goes_first_as_in_the_live_batch_former() -> None:
    # The runner is busy until t=1; then it takes the online job though the batch one is older.
    trace = [job(0.0), job(0.1), job(0.2, tier="online")]
    outcome = simulate(trace, config(pool()))
    order = [t.tier for t in sorted(outcome.requests, key=lambda t: t.started_at)]
    assert order == ["batch", "online", "batch"]


def test_an_autoscaled_pool_starts_cold_runners_for_a_burst_and_scales_back_to_zero() -> None:
    scale = AutoscaleConfig(min_runners=0, max_runners=4, keep_warm_s=20.0, scale_to_zero=True,
                            cooldown_s=0.0, assumed_tokens_per_runner_s=100.0,
                            assumed_cold_start_s=30.0)
    trace = [job(0.0, tier="smoke", requests=40, completion=100)]
    # One row at 0.01 s a step: a runner generates the 100 tokens/s the autoscaler assumes.
    outcome = simulate(trace, config(pool(autoscale=scale, cold_start_s=30.0, step_s=0.01)),
                       until=600.0)
    spans = outcome.records.spans
    starting = [s for s in spans if s.state == RunnerState.STARTING]
    # 4,000 tokens at 100 tokens/s is 40 runner-seconds; drained within 60 s after a 30 s cold
    # start: two runners, each cold for 30 s.
    assert len(starting) == 2
    assert all(s.ended_at is not None and s.ended_at - s.started_at == pytest.approx(30.0)
               for s in starting)
    assert min(w for w in waits(outcome.requests)) >= 30.0
    assert outcome.unfinished == 0
    # After keep-warm every runner stops: nothing is open at the end.
    open_spans = [s for s in spans if s.ended_at is None]
    assert {s.state for s in open_spans} <= {RunnerState.STOPPED}


def test_admission_refuses_what_a_team_quota_refuses_live() -> None:
    trace = [job(0.0, requests=5, team="a") for _ in range(3)] + [job(0.0, team="b")]
    outcome = simulate(trace, config(pool(), quotas={"a": TeamQuota(max_queued_requests=8)}))
    assert outcome.refused == {"max_queued_requests": 2}
    assert len(outcome.requests) == 6


def test_a_trace_for_a_model_with_no_pool_is_refused_by_name() -> None:
    trace = [job(0.0)]
    bad = trace[0].__class__(0.0, "a", "batch", "other-model", (1,), (1,))
    with pytest.raises(ValueError, match="other-model"):
        simulate([bad], config(pool()))


def test_work_open_at_the_windows_end_runs_on_but_only_the_windows_runner_time_is_counted(
        ) -> None:
    # Ten one-second requests at t=0 on one runner, a window ending at 4 s, and a job after it.
    trace = [job(0.0) for _ in range(10)] + [job(50.0)]
    outcome = simulate(trace, config(pool()), since=0.0, until=4.0)
    assert outcome.unfinished == 0
    assert sorted(waits(outcome.requests)) == pytest.approx([float(i) for i in range(10)])
    assert len(outcome.records.jobs) == 10  # the job after the window is not in it
    assert summarize(outcome).gpu_hours == pytest.approx(4 / 3600)


def test_trickling_work_goes_to_the_runner_busy_last_so_a_surplus_one_is_stopped() -> None:
    # A burst scales the pool to two runners; then a trickle of one short job a second. The
    # live dispatcher hands each to the runner busy most recently, so the other idles through
    # its keep-warm and is stopped (taking turns, neither would ever idle that long).
    scale = AutoscaleConfig(min_runners=1, max_runners=2, keep_warm_s=3.0, cooldown_s=0.0,
                            assumed_tokens_per_runner_s=100.0, assumed_cold_start_s=1.0)
    trace = [job(0.0, tier="online", requests=20, completion=50)]
    trace += [job(3.5 + i, tier="smoke", completion=2) for i in range(30)]
    outcome = simulate(trace, config(pool(autoscale=scale, step_s=0.01, cold_start_s=1.0)),
                       since=0.0, until=40.0)
    spans = outcome.records.spans
    runners = {s.runner_id for s in spans}
    assert len(runners) == 2  # the burst's extra runner
    trickle_busy = {s.runner_id for s in spans
                    if s.state == RunnerState.BUSY and s.started_at >= 10.0}
    # A stopped runner leaves the simulation: no span of it is still open at the end.
    running_at_end = {s.runner_id for s in spans if s.ended_at is None}
    assert len(trickle_busy) == 1
    assert running_at_end == trickle_busy
