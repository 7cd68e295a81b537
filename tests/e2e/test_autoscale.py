"""The pool sizes itself, with real runner processes: from zero to its max on a burst, back to
zero after keep-warm, and up again for the next request (served after a cold start), with
nothing lost; and with two API replicas on one PostgreSQL store, one controller acts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import Server, prompts, wait_until
from tests.postgres import fresh_database

MODEL = "tiny-llama"


def autoscaled(tiny_model_dir: Any, **scale: Any) -> dict[str, Any]:
    return {"models": {MODEL: {"path": str(tiny_model_dir), "autoscale": {
        "interval_s": 0.5, "cooldown_s": 1.0, "assumed_cold_start_s": 5.0, **scale}}}}


def pool(server: Server) -> dict[str, Any]:
    r = httpx.get(server.url + "/api/pool", params={"decisions": 200},
                  headers=server.operator_headers(), timeout=10)
    assert r.status_code == 200, r.text
    (entry,) = [p for p in r.json()["data"] if p["model"] == MODEL]
    return dict(entry)


def api_up(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def live(server: Server) -> list[dict[str, Any]]:
    return [r for r in server.runners() if r["model"] == MODEL]


def test_a_burst_scales_up_idle_scales_to_zero_and_a_request_wakes_it(
        make_server: Callable[..., Server], tiny_model_dir: Any) -> None:
    server = make_server(**autoscaled(
        tiny_model_dir, min_runners=0, max_runners=2, keep_warm_s=3.0, scale_to_zero=True,
        # Slow enough that the burst asks for both runners within the batch tier's target.
        assumed_tokens_per_runner_s=5.0), tiers={"batch": {"priority": 40,
                                                            "drain_target_s": 20}})
    server.start(runners=0, expect=0)
    wait_until(lambda: api_up(server), timeout_s=60, what="the API")
    assert wait_until(lambda: pool(server)["decisions"], timeout_s=30,
                      what="a first decision")[-1]["desired"] == 0
    assert live(server) == []

    job = server.submit(prompts(60, max_tokens=4))
    wait_until(lambda: len(live(server)) == 2, timeout_s=60, what="two runners started")
    done = server.wait_job(job["id"], timeout_s=180)
    assert done["request_counts"]["succeeded"] == 60  # nothing lost while runners came up
    up = [d for d in pool(server)["decisions"] if d["started"]]
    assert up
    assert up[-1]["reason"] in ("drain_target", "max_runners")
    assert up[-1]["signals"]["queued_requests"]["batch"] > 0

    # Idle past keep-warm: stopped one per cool-down, down to zero.
    wait_until(lambda: live(server) == [], timeout_s=60, what="scale to zero")
    reasons = [d["reason"] for d in pool(server)["decisions"]]
    assert reasons.count("keep_warm_expired") >= 2
    # The cold start was measured, not assumed.
    status = pool(server)
    assert status["measured"]["cold_starts_measured"] >= 2
    assert status["desired"] == 0

    # The next request wakes the pool and is served after a cold start.
    started = time.monotonic()
    r = httpx.post(server.url + "/v1/completions", timeout=120, json={
        "model": MODEL, "prompt": "hello", "max_tokens": 2, "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["text"] is not None
    assert time.monotonic() - started >= 0.5  # it waited for a runner to come up
    newest_first = pool(server)["decisions"]
    woke = next(i for i, d in enumerate(newest_first) if d["started"])
    assert woke < next(i for i, d in enumerate(newest_first)
                       if d["reason"] == "keep_warm_expired")
    assert newest_first[woke]["signals"]["queued_requests"] == {"online": 1}

    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    assert f'stoker_pool_desired_runners{{model="{MODEL}"}}' in metrics
    assert f'stoker_pool_decisions_total{{model="{MODEL}",reason="keep_warm_expired"}}' \
        in metrics
    shown = subprocess.run([sys.executable, "-m", "stoker.cli", "pool", "status", "--server",
                            server.url, "--decisions", "200"], capture_output=True, text=True,
                           timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert shown.returncode == 0, shown.stderr
    assert "autoscaled 0–2" in shown.stdout
    assert "keep_warm_expired" in shown.stdout
    assert server.interrupt() == 0


def test_two_replicas_on_one_store_run_one_controller(
        make_server: Callable[..., Server], tiny_model_dir: Any) -> None:
    with fresh_database() as url:
        settings = autoscaled(tiny_model_dir, min_runners=1, max_runners=1, keep_warm_s=600)
        first, second = make_server(store=url, **settings), make_server(store=url, **settings)
        first.start(runners=0, expect=1)
        second.start(runners=0, expect=0)
        wait_until(lambda: api_up(second), timeout_s=60, what="the second API")
        # Both replicas run a controller; only one acts: still one runner, one holder.
        wait_until(lambda: len({d["controller"] for d in pool(second)["decisions"]}) >= 1,
                   timeout_s=10, what="a recorded decision")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert len(live(second)) == 1
            time.sleep(0.25)
        holders = {d["controller"] for d in pool(second)["decisions"]}
        assert len(holders) == 1
        # The acting replica dies (its runners with it): the other takes over and starts one.
        assert first.proc is not None
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait()
        for pid in first.runner_pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(lambda: any(r["state"] == "idle" and r["pid"] not in first.runner_pids
                               for r in live(second)),
                   timeout_s=90, what="the second replica's controller to start a runner")
        assert {d["controller"] for d in pool(second)["decisions"]} - holders
        assert second.interrupt() == 0


def warm_revisions(server: Server) -> list[str | None]:
    return [r["revision"] for r in live(server) if r["state"] in ("idle", "busy")]


def test_a_rolling_update_under_load_loses_nothing_and_never_dips_below_the_pool(
        make_server: Callable[..., Server], tiny_model_dir: Any, tmp_path: Path) -> None:
    server = make_server(**autoscaled(tiny_model_dir, min_runners=2, max_runners=2,
                                      keep_warm_s=600))
    server.start(runners=0, expect=2)
    new = tmp_path / "tiny-llama-v2"
    shutil.copytree(tiny_model_dir, new)
    job = server.submit(prompts(120, max_tokens=8))
    samples: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            samples.append(len(warm_revisions(server)))
            stop.wait(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        rolled = subprocess.run([sys.executable, "-m", "stoker.cli", "pool", "roll", MODEL,
                                 "--path", str(new), "--revision", "v2", "--server",
                                 server.url, "--json"],
                                capture_output=True, text=True, timeout=300)
    finally:
        stop.set()
        watcher.join()
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    roll = json.loads(rolled.stdout)
    assert roll["status"] == "done"
    assert min(samples) >= 2  # a new runner was warm before each old one drained
    assert warm_revisions(server) == [roll["revision"]] * 2
    done = server.wait_job(job["id"])
    assert done["request_counts"]["succeeded"] == 120  # nothing lost on the way
    reasons = [d["reason"] for d in pool(server)["decisions"]]
    assert reasons.count("roll_start") == 2
    assert reasons.count("roll_drain") == 2
    assert server.interrupt() == 0


def test_a_roll_to_a_broken_checkpoint_stops_and_the_old_runners_keep_serving(
        make_server: Callable[..., Server], tiny_model_dir: Any, tmp_path: Path) -> None:
    server = make_server(**autoscaled(tiny_model_dir, min_runners=1, max_runners=1,
                                      keep_warm_s=600))
    server.start(runners=0, expect=1)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    r = httpx.post(f"{server.url}/api/pool/{MODEL}/roll", json={"path": str(broken)},
                   headers=server.operator_headers(), timeout=10)
    assert r.status_code == 202, r.text
    roll = wait_until(lambda: next(x for x in pool(server)["rolls"] if x["id"] == r.json()["id"])
                      if pool(server)["rolls"][0]["status"] == "failed" else None,
                      timeout_s=120, what="the roll to fail")
    assert "exited before getting warm" in roll["message"]
    (serving,) = warm_revisions(server)
    assert serving not in (None, roll["revision"])  # the configured checkpoint still serves
    answer = httpx.post(server.url + "/v1/completions", timeout=60, json={
        "model": MODEL, "prompt": "still there?", "max_tokens": 2, "temperature": 0})
    assert answer.status_code == 200
    # A second roll is taken now that the first has ended.
    again = httpx.post(f"{server.url}/api/pool/{MODEL}/roll", json={"path": str(broken)},
                       headers=server.operator_headers(), timeout=10)
    assert again.status_code == 202


def test_a_pinned_job_is_served_by_its_revision_through_a_roll(
        make_server: Callable[..., Server], tiny_model_dir: Any, tmp_path: Path) -> None:
    server = make_server(**autoscaled(tiny_model_dir, min_runners=1, max_runners=1,
                                      keep_warm_s=600))
    server.start(runners=0, expect=1)
    (old,) = warm_revisions(server)
    new = tmp_path / "tiny-llama-v2"
    shutil.copytree(tiny_model_dir, new)
    pinned = server.submit(prompts(600, max_tokens=16), pin_revision=True)
    free = server.submit(prompts(50, max_tokens=4))
    r = httpx.post(f"{server.url}/api/pool/{MODEL}/roll",
                   json={"path": str(new), "revision": "v2"},
                   headers=server.operator_headers(), timeout=10)
    assert r.status_code == 202, r.text
    roll = wait_until(lambda: next((x for x in pool(server)["rolls"]
                                    if x["id"] == r.json()["id"] and x["status"] != "rolling"),
                                   None), timeout_s=240, what="the roll to end")
    assert roll["status"] == "done", roll
    done = server.wait_job(pinned["id"])
    assert done["request_counts"]["succeeded"] == 600
    assert server.wait_job(free["id"])["request_counts"]["succeeded"] == 50
    # Every batch of the pinned job ran on a runner of the revision it was pinned to, and
    # the roll could only end once the job had.
    revision_of = {x["id"]: x["revision"] for x in httpx.get(
        server.url + "/api/runners", params={"include_stopped": "true"},
        headers=server.operator_headers(), timeout=10).json()["data"]}
    batches = server.get(f"/api/jobs/{pinned['id']}/batches")["data"]
    assert {revision_of[b["runner_id"]] for b in batches} == {old}
    assert roll["ended_at"] >= done["finished_at"]
    assert warm_revisions(server) == ["v2"]
    reasons = [d["reason"] for d in pool(server)["decisions"]]
    assert "roll_waiting_pinned" in reasons  # the old runner stayed for the pinned job
