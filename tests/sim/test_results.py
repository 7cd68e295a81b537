"""A simulation's figures, and the per-job cold-GPU baseline beside them."""

from __future__ import annotations

import pytest

from stoker.sim.batch_time import BatchTimeModel
from stoker.sim.engine import simulate
from stoker.sim.results import ColdMachine, per_job_baseline, percentiles, saving, summarize
from tests.sim.conftest import GPU, config, job, pool


def test_each_job_on_a_cold_gpu_pays_its_start_its_requests_one_by_one_and_whole_minutes(
        ) -> None:
    machine = ColdMachine(cold_start_s=100.0, runner_class=GPU,
                          batch_time=BatchTimeModel(step_s=0.1), billing_granularity_s=60.0)
    # 100 s to start, 4 requests of 10 tokens at 0.1 s: 104 s, billed 120 s.
    base = per_job_baseline([job(0.0, requests=4), job(5.0, tier="smoke")], {"m": machine})
    assert base.cost_usd == pytest.approx((120 + 120) * GPU.price_per_s_usd)
    assert base.gpu_hours_by_state["starting"] == pytest.approx(200 / 3600)
    assert base.gpu_hours_by_state["busy"] == pytest.approx(5 / 3600)
    batch = base.tier("batch")
    assert batch is not None
    assert batch.queue_wait.p50_s == pytest.approx(101.0)  # the second of four waits 101 s
    assert batch.completion.p50_s == pytest.approx(104.0)


def test_the_simulated_pool_is_priced_by_its_runner_seconds_state_by_state() -> None:
    trace = [job(float(t), requests=2) for t in range(0, 100, 10)]
    outcome = simulate(trace, config(pool(runners=2)), until=200.0)
    summary = summarize(outcome)
    # Two runners warm over 200 s; ten jobs of two requests at one second each are busy time.
    assert summary.gpu_hours == pytest.approx(2 * 200 / 3600)
    assert summary.gpu_hours_by_state["busy"] == pytest.approx(20 / 3600)
    assert summary.cost_usd == pytest.approx(400 * GPU.price_per_s_usd)
    assert summary.utilization == pytest.approx(20 / 400)
    assert saving(summary, summary) == 0.0


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentiles(values) == percentiles(list(reversed(values)))
    found = percentiles(values)
    assert (found.p50_s, found.p95_s, found.p99_s) == (50.0, 95.0, 99.0)
    assert percentiles([]).p95_s is None
