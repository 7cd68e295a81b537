"""Who sees which costs, window checks, and the counters /metrics exports."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from stoker.core.batching import Pick
from stoker.core.model import RunnerState
from stoker.store import RequestOutcome
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import line, make_client

API = tuple[TestClient, SQLiteStore]
A = {"Authorization": "Bearer team-a-token"}
B = {"Authorization": "Bearer team-b-token"}
OPERATOR = {"Authorization": "Bearer operator-token"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[API]:
    yield from make_client(
        tmp_path, runner_token="runner-token", operator_token="operator-token",
        teams={"a": {"token": "team-a-token", "quotas": {"max_queued_requests": 3}},
               "b": {"token": "team-b-token"}})


def run_everything(store: SQLiteStore) -> None:
    now = time.time()
    runner = store.register_runner(name="r", model="tiny-llama", pid=None, host="h",
                                   max_batch_size=64, max_wait_ms=0, now=now - 10)
    store.set_runner_state(runner.id, RunnerState.IDLE, now=now - 9)
    picks = [Pick(g.tier, g.team, g.queued) for g in store.queue_groups("tiny-llama")]
    got = store.lease_batch(runner.id, "tiny-llama", picks, ttl_s=60, now=now - 5)
    assert got is not None
    store.complete(got[0].id, runner.id, [RequestOutcome(r.id, text="x", finish_reason="stop",
                                                         prompt_tokens=1, completion_tokens=3)
                                          for r in got[1]], started_at=now - 5,
                   ended_at=now - 1, now=now - 1)


def test_a_team_sees_its_own_jobs_and_the_operator_all(api: API) -> None:
    client, store = api
    ja = client.post("/api/jobs", json={"requests": [line("x")]}, headers=A).json()["id"]
    jb = client.post("/api/jobs", json={"requests": [line("y")]}, headers=B).json()["id"]
    before_run = time.time()
    run_everything(store)
    assert client.get("/api/cost").status_code == 401
    mine = client.get("/api/cost", headers=A, params={"team": "b"}).json()
    assert [j["job_id"] for j in mine["jobs"]] == [ja]
    assert set(mine["by_team"]) == {"a"}
    everyone = client.get("/api/cost", headers=OPERATOR).json()
    elapsed = time.time() - before_run
    assert {j["job_id"] for j in everyone["jobs"]} == {ja, jb}
    only_b = client.get("/api/cost", headers=OPERATOR, params={"team": "b"}).json()
    assert [j["job_id"] for j in only_b["jobs"]] == [jb]
    # Ten recorded seconds, and the idle runner's open interval up to the report's "now"
    # (however slow this machine is at the moment).
    assert 10 - 1e-6 <= everyone["totals"]["gpu_s"] <= 10 + elapsed
    assert client.get("/api/waste", headers=A).status_code == 200


def test_a_backwards_window_is_422(api: API) -> None:
    r = api[0].get("/api/cost", headers=OPERATOR, params={"since": 100, "until": 50})
    assert r.status_code == 422
    assert "since" in r.json()["error"]["message"]


def test_metrics_count_refusals_and_batches(api: API) -> None:
    client = api[0]
    assert client.post("/api/jobs", json={"requests": [line("x"), line("y")]},
                       headers=A).status_code == 201
    assert client.post("/api/jobs", json={"requests": [line("z"), line("w")]},
                       headers=A).status_code == 429
    runner = client.post("/api/runners", headers={"Authorization": "Bearer runner-token"},
                         json={"name": "r", "model": "tiny-llama"}).json()["runner"]["id"]
    headers = {"Authorization": "Bearer runner-token"}
    client.post(f"/api/runners/{runner}/state", json={"state": "idle"}, headers=headers)
    work = client.post(f"/api/runners/{runner}/lease", json={"wait_s": 5},
                       headers=headers).json()
    client.post(f"/api/runners/{runner}/complete", headers=headers, json={
        "lease_id": work["lease"]["id"], "started_at": 1.0, "ended_at": 2.0,
        "results": [{"request_id": r["id"], "text": "t", "finish_reason": "stop",
                     "prompt_tokens": 2, "completion_tokens": 5} for r in work["requests"]]})
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=A).status_code == 401
    text = client.get("/metrics", headers=OPERATOR).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("stoker_rejected_submissions_total", (("team", "a"),))] == 1
    assert samples[("stoker_batch_size_sum", (("model", "tiny-llama"),))] == 2
    assert samples[("stoker_tokens_total", (("kind", "completion"), ("model", "tiny-llama")))] \
        == 10
    assert samples[("stoker_runner_state", (("model", "tiny-llama"), ("state", "idle")))] == 1
