"""`stoker trace synth` and `stoker simulate`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

POOL = {
    "default_model": "llama",
    "runner_classes": {"h100": {"accelerator": "H100", "memory_gb": 80,
                                "price_per_hour_usd": 4.0}},
    "batching": {"max_batch_size": 16, "max_wait_ms": 2000},
    "models": {"llama": {"backend": "openai", "base_url": "http://127.0.0.1:9/v1",
                         "runner_class": "h100",
                         "autoscale": {"min_runners": 0, "max_runners": 3, "keep_warm_s": 600,
                                       "scale_to_zero": True, "assumed_cold_start_s": 120}}},
}


def stoker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stoker.cli", *args], capture_output=True,
                          text=True, timeout=300)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    config = tmp_path / "pool.yaml"
    config.write_text(yaml.safe_dump(POOL))
    trace = tmp_path / "trace.jsonl"
    made = stoker("trace", "synth", "--out", str(trace), "--days", "1", "--seed", "11",
                  "--prs-per-weekday", "300", "--model", "llama")
    assert made.returncode == 0, made.stderr
    return config, trace


def test_simulate_compares_the_pool_with_an_always_on_one_and_a_cold_gpu_per_job(
        tmp_path: Path) -> None:
    config, trace = _setup(tmp_path)
    done = stoker("simulate", "--config", str(config), "--trace", str(trace), "--batch-time",
                  "research", "--cold-start-s", "120", "--json", "--charts",
                  str(tmp_path / "charts"))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    labels = [r["label"] for r in answer["runs"]]
    assert labels == ["stoker", "fixed 3 always on", "one cold GPU per job"]
    ours, fixed, cold = answer["runs"]
    # Three runners warm all day cost more than a pool that scales to the work.
    assert ours["cost_usd"] < fixed["cost_usd"]
    assert cold["gpu_hours_by_state"]["starting"] > ours["gpu_hours_by_state"]["starting"]
    assert answer["saving"]["one cold GPU per job"] == 1 - ours["cost_usd"] / cold["cost_usd"]
    assert {t["tier"] for t in ours["tiers"]} == {"smoke", "regression"}
    assert ours["gpu_hours_by_state"]["starting"] > 0  # it scaled from zero
    for chart in ("cost.png", "wait.png", "runners.png"):
        assert (tmp_path / "charts" / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_sweep_marks_the_cheapest_setting_meeting_each_target(tmp_path: Path) -> None:
    config, trace = _setup(tmp_path)
    done = stoker("simulate", "--config", str(config), "--trace", str(trace), "--batch-time",
                  "research", "--cold-start-s", "120", "--sweep", "pool.keep_warm_s=0,600,3600",
                  "--sweep", "batching.max_wait_ms=500,2000", "--wait-target", "smoke=10",
                  "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert len(answer["points"]) == 6
    assert answer["targets"]["smoke"] == 10.0
    best = answer["cheapest_meeting"]["smoke"]
    meeting = [p for p in answer["points"] if p["meets"].get("smoke")]
    assert best == min(meeting, key=lambda p: p["cost_usd"])["setting"]
    # Keeping runners warm longer costs more and waits less, all else equal.
    by = {(p["setting"]["pool.keep_warm_s"], p["setting"]["batching.max_wait_ms"]): p
          for p in answer["points"]}
    assert by[(3600, 500)]["cost_usd"] > by[(0, 500)]["cost_usd"]


def test_a_bad_trace_is_one_line_naming_the_line(tmp_path: Path) -> None:
    config, trace = _setup(tmp_path)
    trace.write_text(trace.read_text() + "{oops\n")
    done = stoker("simulate", "--config", str(config), "--trace", str(trace), "--batch-time",
                  "research")
    assert done.returncode == 2
    assert "not JSON" in done.stderr
    assert "Traceback" not in done.stderr
    assert "line" in done.stderr


def test_trace_export_writes_a_real_runs_jobs_and_calibration_that_simulate_reads(
        tmp_path: Path) -> None:
    from stoker.core.model import RunnerState
    from stoker.store.sqlite import SQLiteStore
    from tests.store.test_store_contract import MODEL, lease_all, new_job, ok, submit

    config = tmp_path / "stoker.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path), "default_model": MODEL,
                                      "models": {MODEL: {"path": str(tmp_path)}}}))
    store = SQLiteStore(tmp_path / "stoker.db")
    # One runner, launched at 1,000 and warm at 1,010, runs two jobs in batches of 4 and 2.
    r = store.register_runner(name="r", model=MODEL, pid=1, host="h", max_batch_size=8,
                              max_wait_ms=10, now=1_004.0, launched_at=1_000.0)
    store.set_runner_state(r.id, RunnerState.IDLE, now=1_010.0)
    for at, n in ((1_020.0, 4), (1_030.0, 2)):
        submit(store, new_job(n), now=at)
        lease_id, ids = lease_all(store, r.id, now=at + 1)
        store.complete(lease_id, r.id, [ok(i) for i in ids], started_at=at + 1,
                       ended_at=at + 2 + n, now=at + 2 + n)
    store.close()
    trace, calibration = tmp_path / "real.jsonl", tmp_path / "calibration.json"
    done = stoker("trace", "export", "--config", str(config), "--since", "900", "--until",
                  "1100", "--out", str(trace), "--calibration", str(calibration))
    assert done.returncode == 0, done.stderr
    jobs = [json.loads(line) for line in trace.read_text().splitlines()]
    assert [(j["arrival_s"], j["completion_tokens"]) for j in jobs] == [
        (1_020.0, [5] * 4), (1_030.0, [5] * 2)]
    measured = json.loads(calibration.read_text())["models"][MODEL]
    assert measured["cold_start_s"] == 10.0
    assert measured["batch_time"]["step_s"] > 0
    simulated = stoker("simulate", "--config", str(config), "--trace", str(trace),
                       "--calibration", str(calibration), "--json")
    assert simulated.returncode == 0, simulated.stderr
    assert json.loads(simulated.stdout)["runs"][0]["tiers"][0]["requests"] == 6
