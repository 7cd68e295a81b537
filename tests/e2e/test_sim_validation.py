"""The simulator against reality: one trace run for real (`stoker serve`, the tiny model, an
autoscaled pool of local runners) and in the simulator, calibrated from that run's records the
way `stoker trace export --calibration` does it, agree within 15% on the pool's cost and on
each tier's p95 queue wait."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from stoker.accounting.view import cost_config, model_classes, runner_classes
from stoker.planning.setup import Given, calibrate, sim_config
from stoker.settings import load_settings
from stoker.sim.engine import simulate
from stoker.sim.results import Summary, recorded_outcome, summarize
from stoker.sim.trace import trace_from_usage
from stoker.store.sqlite import SQLiteStore
from tests.e2e.conftest import Server

MODEL = "tiny-llama"
TOLERANCE = 0.15


def planned_jobs(seed: int) -> list[tuple[float, str, list[int]]]:
    """(offset s, tier, max_tokens per request): smoke suites through a minute, two bursts of
    batch work that the pool scales up for."""
    rng = random.Random(seed)
    jobs: list[tuple[float, str, list[int]]] = []
    at = 0.5
    while at < 45.0:
        jobs.append((at, "smoke", [rng.randint(8, 24) for _ in range(rng.randint(1, 3))]))
        at += rng.uniform(1.0, 3.0)
    for start in (6.0, 26.0):
        jobs.append((start, "batch", [rng.randint(24, 48) for _ in range(240)]))
    return sorted(jobs)


def request(i: int, max_tokens: int) -> dict[str, Any]:
    return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
            "body": {"model": "default", "prompt": f"Line {i} of the plan.",
                     "max_tokens": max_tokens, "temperature": 0}}


def replay(server: Server, jobs: list[tuple[float, str, list[int]]]) -> list[str]:
    ids = []
    start = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for offset, tier, tokens in jobs:
            time.sleep(max(0.0, start + offset - time.monotonic()))
            r = client.post("/api/jobs", json={
                "requests": [request(i, n) for i, n in enumerate(tokens)], "tier": tier,
                "cache": False})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
    return ids


def p95(summary: Summary, tier: str) -> float:
    times = summary.tier(tier)
    assert times is not None
    assert times.queue_wait.p95_s is not None
    return times.queue_wait.p95_s


def test_the_simulator_agrees_with_a_real_run_on_cost_and_p95_wait(
        make_server: Callable[..., Server], tiny_model_dir: Any) -> None:
    server = make_server(
        batching={"max_batch_size": 8, "max_wait_ms": 1000, "continuous": False},
        models={MODEL: {"path": str(tiny_model_dir), "autoscale": {
            "min_runners": 1, "max_runners": 3, "keep_warm_s": 4.0, "cooldown_s": 1.0,
            "interval_s": 0.5, "assumed_cold_start_s": 5.0,
            "assumed_tokens_per_runner_s": 400.0}}},
        tiers={"batch": {"priority": 40, "drain_target_s": 2.0}})
    server.start(runners=0, expect=1)
    ids = replay(server, planned_jobs(seed=5))
    for job_id in ids:
        server.wait_job(job_id, timeout_s=300)
    store = SQLiteStore(server.data_dir / "stoker.db")
    settings = load_settings(server.config)
    try:
        jobs = [store.get_job(i) for i in ids]
        since = min(j.created_at for j in jobs)
        until = max(j.finished_at or 0.0 for j in jobs)
        records = store.usage_records(since=since, until=until,
                                      classes=model_classes(settings),
                                      default_class=runner_classes(settings)["cpu"])
    finally:
        store.close()
    real = summarize(recorded_outcome(records, since=since, until=until), "real",
                     cost_config(settings))
    trace = trace_from_usage(records)
    config = sim_config(settings, {MODEL}, calibrate(records), Given())
    simulated = summarize(simulate(trace, config, since=since, until=until), "simulated",
                          cost_config(settings))
    figures = {"cost": (real.cost_usd, simulated.cost_usd),
               **{f"{t} p95 wait": (p95(real, t), p95(simulated, t))
                  for t in ("smoke", "batch")}}
    print(figures, real.gpu_hours_by_state, simulated.gpu_hours_by_state)
    for name, (seen, predicted) in figures.items():
        assert predicted == pytest.approx(seen, rel=TOLERANCE), (name, figures)
    assert real.gpu_hours_by_state["starting"] > 0  # the pool did scale up for the bursts
