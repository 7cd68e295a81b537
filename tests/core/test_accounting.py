"""Cost attribution as pure functions over recorded intervals and batches."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stoker.core.accounting import (
    BatchUse,
    CostConfig,
    JobFacts,
    RequestUse,
    RunnerClass,
    RunnerFacts,
    StateSpan,
    UsageRecords,
    attribute_costs,
    knee_batch_size,
    request_shares,
    throughput_by_batch_size,
)
from stoker.core.model import RunnerState

GPU = RunnerClass("a10g", "A10G", 24.0, 3.6)  # $0.001 per second
IDLE, BUSY, STARTING = RunnerState.IDLE, RunnerState.BUSY, RunnerState.STARTING


def job(job_id: str, team: str = "t", model: str = "m", created_at: float = 0.0) -> JobFacts:
    return JobFacts(job_id, team, "batch", model, created_at, None, 1)


def test_a_worked_example() -> None:
    # One runner: 10 s starting, 20 s idle, 10 s busy running one batch of two jobs' requests.
    records = UsageRecords(
        runners=(RunnerFacts("r1", "m", GPU),),
        spans=(StateSpan("r1", STARTING, 0, 10), StateSpan("r1", IDLE, 10, 30),
               StateSpan("r1", BUSY, 30, 40)),
        batches=(BatchUse("b1", "r1", "m", 30, 40, 2, (
            RequestUse("q1", "j1", prompt_tokens=10, completion_tokens=20),
            RequestUse("q2", "j2", prompt_tokens=30, completion_tokens=60))),),
        jobs=(job("j1", created_at=25), job("j2", team="u", created_at=28)))
    report = attribute_costs(records, CostConfig(min_billed_s=0), since=0, until=40)
    j1, j2 = report.jobs
    assert j1.direct_gpu_s == pytest.approx(2.5)      # 30 of 120 tokens
    assert j2.direct_gpu_s == pytest.approx(7.5)
    assert j1.direct_cost_usd == pytest.approx(0.0025)
    assert j1.loaded_gpu_s == pytest.approx(2.5 + 30 * 0.25)  # a quarter of 30 s overhead
    assert j2.loaded_cost_usd == pytest.approx(0.0075 + 0.0225)
    assert j1.queue_wait_s == pytest.approx(5)
    assert j1.run_time_s == pytest.approx(10)
    # 20 tokens at the single-stream rate (80 tokens / 10 s / 2 sequences = 4 tok/s) after a
    # 10 s cold start: 15 s at $0.001.
    assert j1.counterfactual_cost_usd == pytest.approx(0.015)
    assert report.total_gpu_s == pytest.approx(40)
    assert report.unattributed_gpu_s == pytest.approx(0)
    (pool,) = report.pools
    assert pool.seconds_by_state == {"starting": 10, "idle": 20, "busy": 10}


def test_cold_machines_bill_a_minimum() -> None:
    records = UsageRecords((RunnerFacts("r1", "m", GPU),), (StateSpan("r1", BUSY, 0, 1),),
                           (BatchUse("b", "r1", "m", 0, 1, 1,
                                     (RequestUse("q", "j", 1, 10),)),), (job("j"),))
    (cost,) = attribute_costs(records, CostConfig(min_billed_s=60), since=0, until=1).jobs
    assert cost.counterfactual_cost_usd == pytest.approx(0.06)
    assert cost.saving_usd == pytest.approx(0.06 - 0.001)


def test_overhead_of_a_pool_no_job_used_is_unattributed() -> None:
    records = UsageRecords((RunnerFacts("r1", "m", GPU),), (StateSpan("r1", IDLE, 0, 100),),
                           (), ())
    report = attribute_costs(records, CostConfig(), since=0, until=100)
    assert report.total_gpu_s == pytest.approx(100)
    assert report.unattributed_gpu_s == pytest.approx(100)
    assert report.jobs == ()


def test_the_window_clips_open_intervals() -> None:
    records = UsageRecords((RunnerFacts("r1", "m", GPU),), (StateSpan("r1", IDLE, 0, None),),
                           (), ())
    report = attribute_costs(records, CostConfig(), since=50, until=80)
    assert report.total_gpu_s == pytest.approx(30)


def test_knee_is_where_throughput_levels_off() -> None:
    assert knee_batch_size({1: 10.0, 2: 19.0, 4: 36.0, 8: 60.0, 16: 64.0}) == 8
    assert knee_batch_size({}) is None


def test_throughput_curve_is_the_median_per_size() -> None:
    def batch(size: int, seconds: float) -> BatchUse:
        return BatchUse("b", "r", "m", 0, seconds, size,
                        tuple(RequestUse(f"q{i}", "j", 0, 10) for i in range(size)))

    curve = throughput_by_batch_size([batch(1, 1), batch(1, 2), batch(1, 4), batch(4, 2)])
    assert curve == {1: 5.0, 4: 20.0}


# -- properties --------------------------------------------------------------------------------

@st.composite
def recorded_pools(draw: st.DrawFn) -> tuple[UsageRecords, float]:
    """Runners moving starting → (idle | busy)* with batches inside their busy spans."""
    runners, spans, batches, jobs = [], [], [], {}
    n_jobs = draw(st.integers(1, 5))
    for j in range(n_jobs):
        jobs[f"j{j}"] = JobFacts(f"j{j}", f"team{j % 2}", "batch", f"m{j % 2}", 0.0, None, 1)
    end = 0.0
    for r in range(draw(st.integers(1, 3))):
        model = f"m{r % 2}"
        price = draw(st.sampled_from([0.36, 1.006, 3.6]))
        runners.append(RunnerFacts(f"r{r}", model, RunnerClass("c", "A10G", 24, price)))
        t = 0.0
        start = draw(st.floats(0.1, 30))
        spans.append(StateSpan(f"r{r}", STARTING, t, t + start))
        t += start
        for k in range(draw(st.integers(0, 6))):
            length = draw(st.floats(0.1, 50))
            if draw(st.booleans()):
                spans.append(StateSpan(f"r{r}", BUSY, t, t + length))
                inner = draw(st.floats(0.0, 1.0)) * length
                owners = draw(st.lists(st.sampled_from([j for j in jobs
                                                        if jobs[j].model == model] or ["x"]),
                                       min_size=1, max_size=4))
                uses = tuple(RequestUse(f"r{r}b{k}q{i}", o, draw(st.integers(0, 50)),
                                        draw(st.integers(0, 50)))
                             for i, o in enumerate(owners) if o != "x")
                batches.append(BatchUse(f"r{r}b{k}", f"r{r}", model, t, t + inner,
                                        len(owners), uses))
            else:
                spans.append(StateSpan(f"r{r}", IDLE, t, t + length))
            t += length
        end = max(end, t)
    return UsageRecords(tuple(runners), tuple(spans), tuple(batches), tuple(jobs.values())), end


@given(recorded_pools(), st.floats(0, 2), st.floats(0, 2))
@settings(max_examples=200, deadline=None)
def test_every_runner_second_is_accounted_for(case: tuple[UsageRecords, float],
                                               prompt_w: float, completion_w: float) -> None:
    records, end = case
    report = attribute_costs(records, CostConfig(prompt_w, completion_w), since=0, until=end)
    recorded = sum(s.ended_at - s.started_at for s in records.spans if s.ended_at is not None)
    assert report.total_gpu_s == pytest.approx(recorded, rel=1e-9, abs=1e-9)
    # What the jobs carry adds up to what the report says it attributed: nothing attributed
    # is dropped on the way to a job, and no job is charged twice.
    assert math.fsum(c.loaded_gpu_s for c in report.jobs) == pytest.approx(
        report.attributed_gpu_s, rel=1e-9, abs=1e-9)
    assert math.fsum(c.loaded_cost_usd for c in report.jobs) == pytest.approx(
        report.attributed_usd, rel=1e-9, abs=1e-9)
    assert report.attributed_gpu_s <= recorded * 1.000001 + 1e-9
    for cost in report.jobs:
        assert cost.direct_cost_usd <= cost.loaded_cost_usd + 1e-12
        assert cost.direct_gpu_s <= cost.loaded_gpu_s + 1e-12


@given(recorded_pools())
@settings(max_examples=100, deadline=None)
def test_shares_of_a_batch_sum_to_the_batch(case: tuple[UsageRecords, float]) -> None:
    records, _ = case
    for batch in records.batches:
        shares = request_shares(batch, CostConfig())
        if batch.requests:
            assert math.fsum(shares.values()) == pytest.approx(1.0)
            assert all(s >= 0 for s in shares.values())
        else:
            assert shares == {}


@given(st.lists(st.tuples(st.floats(0.5, 20), st.integers(1, 8)), min_size=1, max_size=8))
@settings(max_examples=100, deadline=None)
def test_an_always_busy_pool_has_no_idle_cost(batches: list[tuple[float, int]]) -> None:
    spans, uses, t = [], [], 0.0
    for k, (length, size) in enumerate(batches):
        spans.append(StateSpan("r", BUSY, t, t + length))
        uses.append(BatchUse(f"b{k}", "r", "m", t, t + length, size,
                             tuple(RequestUse(f"b{k}q{i}", "j", 5, 5) for i in range(size))))
        t += length
    records = UsageRecords((RunnerFacts("r", "m", GPU),), tuple(spans), tuple(uses), (job("j"),))
    report = attribute_costs(records, CostConfig(), since=0, until=t)
    (pool,) = report.pools
    assert pool.cost_by_state_usd.get("idle", 0.0) == 0.0
    (cost,) = report.jobs
    assert cost.loaded_cost_usd == pytest.approx(cost.direct_cost_usd)
    assert cost.direct_gpu_s == pytest.approx(t)
    assert report.unattributed_gpu_s == pytest.approx(0.0, abs=1e-9)
