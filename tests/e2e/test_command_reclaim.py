"""A command job on a lent runner, end to end: `stoker serve` with one static runner of the
tiny model and no runner kept in reserve runs a real torch training job (the example's); an
online request arrives; the runner is reclaimed: the job gets SIGTERM, saves its checkpoint and
exits, is requeued with no attempt counted, the online request is served, and the job's next
run resumes from its checkpoint and finishes. Its logs hold both runs; its GPU time is billed
to it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(300)

TRAIN = Path(__file__).parents[2] / "examples" / "commands" / "train_regression.py"


def logs(server: Server, job_id: str) -> str:
    return httpx.get(f"{server.url}/api/jobs/{job_id}/logs", timeout=10).text


def command_server(make_server: Callable[..., Server], tiny_model_dir: Any,
                   checkpoints: Path, *, continuous: bool = False) -> Server:
    """One runner of the tiny model, none kept in reserve, reclaimed at once; commands on."""
    server = make_server(
        batching={"max_batch_size": 4, "max_wait_ms": 0, "continuous": continuous},
        models={"tiny-llama": {"path": str(tiny_model_dir),
                               "online_reserve": {"runners": 0, "reclaim_grace_s": 0.0}}},
        commands={"enabled": True, "checkpoint_root": str(checkpoints),
                  "log_interval_s": 0.2},
        leases={"ttl_s": 1.5, "runner_timeout_s": 10.0, "long_poll_s": 1.0, "max_attempts": 1})
    server.start(runners=1)
    return server


def start_training(server: Server, steps: int) -> dict[str, Any]:
    """Submit the training example and wait until it has taken 100 steps."""
    r = httpx.post(f"{server.url}/api/commands", timeout=30, json={
        "argv": [sys.executable, str(TRAIN), "--steps", str(steps), "--save-every", "50",
                 "--pace-s", "0.01"], "grace_s": 30, "tier": "batch"})
    assert r.status_code == 201, r.text
    job = dict(r.json())
    wait_until(lambda: "step 100 " in logs(server, job["id"]), timeout_s=60,
               what="the training job to be under way")
    return job


def test_a_reclaimed_command_checkpoints_is_requeued_and_resumes_to_the_end(
        make_server: Callable[..., Server], tiny_model_dir: Any, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints"
    server = command_server(make_server, tiny_model_dir, checkpoints)
    job = start_training(server, 1500)
    online = server.submit([{"custom_id": "o", "method": "POST", "url": "/v1/completions",
                             "body": {"model": "default", "prompt": "Quick!", "max_tokens": 4,
                                      "temperature": 0}}], tier="online", cache=False)
    served = server.wait_job(online["id"], timeout_s=60)
    assert served["request_counts"]["succeeded"] == 1
    done = server.wait_job(job["id"], timeout_s=200)
    # max_attempts is 1: had the reclaim counted as an attempt, the job would have failed.
    assert done["request_counts"]["succeeded"] == 1, logs(server, job["id"])

    text = logs(server, job["id"])
    saved = int(text.split("checkpointed at step ")[1].split()[0])
    assert 100 <= saved < 1500
    assert "=== run 2 on runner" in text
    assert f"resumed from step {saved}" in text
    assert "done at step 1500" in text
    assert (checkpoints / job["id"] / "state.pt").is_file()
    [line] = server.results(job["id"])
    assert "done at step 1500" in line["response"]["body"]["output_tail"]

    runs = httpx.get(f"{server.url}/api/jobs/{job['id']}/batches", timeout=10).json()["data"]
    assert len(runs) == 2  # the reclaimed run and the one that finished
    [online_batch] = httpx.get(f"{server.url}/api/jobs/{online['id']}/batches",
                               timeout=10).json()["data"]
    first, last = sorted(runs, key=lambda b: b["started_at"])
    # Online was served between the runs: after the first was stopped, before the second.
    assert first["ended_at"] <= online_batch["started_at"] <= last["started_at"]
    cost = httpx.get(f"{server.url}/api/cost", timeout=30).json()
    [billed] = [j for j in cost["jobs"] if j["job_id"] == job["id"]]
    ran_s = sum(b["ended_at"] - b["started_at"] for b in runs)
    assert billed["direct_gpu_s"] == pytest.approx(ran_s, rel=0.05)
    assert billed["direct_cost_usd"] > 0


def test_a_draining_runner_hands_its_command_back_and_the_next_runner_resumes_it(
        make_server: Callable[..., Server], tiny_model_dir: Any, tmp_path: Path) -> None:
    server = command_server(make_server, tiny_model_dir, tmp_path / "checkpoints")
    job = start_training(server, 600)
    [runner] = server.runners()
    drained = httpx.post(f"{server.url}/api/runners/{runner['id']}/drain", timeout=10)
    assert drained.status_code == 200
    # The pool keeps its size: the drained runner's replacement takes the command up.
    done = server.wait_job(job["id"], timeout_s=200)
    assert done["request_counts"]["succeeded"] == 1, logs(server, job["id"])
    text = logs(server, job["id"])
    saved = int(text.split("checkpointed at step ")[1].split()[0])
    assert f"resumed from step {saved}" in text
    assert "done at step 600" in text
    runs = httpx.get(f"{server.url}/api/jobs/{job['id']}/batches", timeout=10).json()["data"]
    assert len({b["runner_id"] for b in runs}) == 2  # one run on each runner


def test_a_cancelled_command_is_stopped_and_its_runner_serves_again(
        make_server: Callable[..., Server], tiny_model_dir: Any, tmp_path: Path) -> None:
    server = command_server(make_server, tiny_model_dir, tmp_path / "checkpoints",
                            continuous=True)
    job = start_training(server, 100_000)
    cancelled = httpx.post(f"{server.url}/api/jobs/{job['id']}/cancel", timeout=10)
    assert cancelled.status_code == 200
    done = server.wait_job(job["id"], timeout_s=60)
    # Stopped, not left to run for hours: it ran, so its request ends failed and is billed.
    assert (done["status"], done["request_counts"]["failed"]) == ("cancelled", 1)
    assert "checkpointed at step" in logs(server, job["id"])
    [line] = server.results(job["id"])
    assert "cancelled while the command ran" in line["error"]["message"]
    cost = httpx.get(f"{server.url}/api/cost", timeout=30).json()
    [billed] = [j for j in cost["jobs"] if j["job_id"] == job["id"]]
    assert billed["direct_gpu_s"] > 0
    # Its runner (a continuous one: the command ran beside its empty loop) takes work again.
    answer = server.submit([{"custom_id": "a", "method": "POST", "url": "/v1/completions",
                             "body": {"model": "default", "prompt": "Hi", "max_tokens": 3}}],
                           tier="batch", cache=False)
    assert server.wait_job(answer["id"], timeout_s=60)["request_counts"]["succeeded"] == 1
