"""A job's life through the API, with the runner protocol driven by hand."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.store import NewJob, NewRequest
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import line, make_client

API = tuple[TestClient, SQLiteStore]


def register(client: TestClient, **extra: Any) -> str:
    r = client.post("/api/runners", json={"name": "t", "model": "tiny-llama", **extra})
    assert r.status_code == 201, r.text
    runner_id = str(r.json()["runner"]["id"])
    assert client.post(f"/api/runners/{runner_id}/state", json={"state": "idle"}).status_code == 200
    return runner_id


def complete(client: TestClient, runner_id: str, lease: dict[str, Any]) -> dict[str, Any]:
    results = [{"request_id": r["id"], "text": f"answer to {r['body']['prompt']}",
                "finish_reason": "stop", "prompt_tokens": 2, "completion_tokens": 3}
               for r in lease["requests"]]
    r = client.post(f"/api/runners/{runner_id}/complete",
                    json={"lease_id": lease["lease"]["id"], "started_at": 1.0, "ended_at": 2.0,
                          "results": results})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_jsonl_job_runs_and_results_come_in_submission_order(api: API) -> None:
    client, _ = api
    text = "".join(json.dumps(line(f"id-{i}", prompt=f"p{i}")) + "\n" for i in range(6))
    job = client.post("/api/jobs?tier=smoke", content=text,
                      headers={"Content-Type": "application/jsonl"}).json()
    assert (job["status"], job["tier"], job["request_counts"]["total"]) == ("queued", "smoke", 6)
    runner_id = register(client)
    first = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    assert len(first["requests"]) == 4  # a full batch goes at once
    assert client.get("/api/runners").json()["data"][0]["batch_in_hand"] == 4
    complete(client, runner_id, first)
    second = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    assert len(second["requests"]) == 2  # the rest, once max_wait_ms has passed
    complete(client, runner_id, second)
    status = client.get(f"/api/jobs/{job['id']}").json()
    assert status["status"] == "completed"
    batches = client.get(f"/api/jobs/{job['id']}/batches").json()
    assert sorted(b["size"] for b in batches["data"]) == [2, 4]
    assert batches["average_batch_size"] == 3.0
    assert status["request_counts"]["succeeded"] == 6
    lines = [json.loads(x) for x in client.get(f"/api/jobs/{job['id']}/results").text.splitlines()]
    assert [x["custom_id"] for x in lines] == [f"id-{i}" for i in range(6)]
    body = lines[3]["response"]["body"]
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "answer to p3"
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}


def test_lease_waits_then_returns_nothing_when_queue_is_empty(api: API) -> None:
    client, _ = api
    runner_id = register(client)
    r = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 0.2}).json()
    assert r == {"lease": None, "requests": [], "draining": False}


def test_drained_runner_gets_no_work(api: API) -> None:
    client, _ = api
    client.post("/api/jobs", json={"requests": [line("a")]})
    runner_id = register(client)
    assert client.post(f"/api/runners/{runner_id}/drain").json()["state"] == "draining"
    r = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 1}).json()
    assert r["lease"] is None
    assert r["draining"] is True
    beat = client.post(f"/api/runners/{runner_id}/heartbeat", json={"lease_ids": []}).json()
    assert beat["draining"] is True


def test_runner_drained_after_leasing_gets_no_more_work(api: API) -> None:
    # The replica remembers a runner's terms from its first lease; its state it does not.
    client, _ = api
    client.post("/api/jobs", json={"requests": [line("a")]})
    runner_id = register(client)
    first = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 1}).json()
    complete(client, runner_id, first)
    client.post(f"/api/runners/{runner_id}/drain")
    job = client.post("/api/jobs", json={"requests": [line("b")]}).json()
    r = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 1}).json()
    assert (r["lease"], r["draining"]) == (None, True)
    assert client.get(f"/api/jobs/{job['id']}").json()["request_counts"]["queued"] == 1


def test_lease_for_an_unknown_runner_is_404(api: API) -> None:
    client, _ = api
    r = client.post("/api/runners/runner_nobody/lease", json={"wait_s": 0})
    assert r.status_code == 404
    assert "runner_nobody" in r.json()["error"]["message"]


def test_heartbeat_reports_lost_leases(api: API) -> None:
    client, _ = api
    runner_id = register(client)
    beat = client.post(f"/api/runners/{runner_id}/heartbeat",
                       json={"lease_ids": ["lease_gone"]}).json()
    assert beat["lost_lease_ids"] == ["lease_gone"]


def test_complete_with_foreign_lease_is_a_conflict(api: API) -> None:
    client, _ = api
    runner_id = register(client)
    r = client.post(f"/api/runners/{runner_id}/complete",
                    json={"lease_id": "lease_x", "started_at": 0, "ended_at": 1, "results": []})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "lease_lost")


def test_runner_state_cycle_and_cancel_keeps_results(api: API) -> None:
    client, _ = api
    job = client.post("/api/jobs", json={"requests": [line(f"c{i}") for i in range(6)]}).json()
    runner_id = register(client)
    lease = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    assert client.get("/api/runners").json()["data"][0]["state"] == "busy"
    cancelled = client.post(f"/api/jobs/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelling"
    assert cancelled["request_counts"]["cancelled"] == 2
    complete(client, runner_id, lease)
    assert client.get(f"/api/jobs/{job['id']}").json()["status"] == "cancelled"
    assert client.get("/api/runners").json()["data"][0]["state"] == "idle"
    lines = [json.loads(x) for x in client.get(f"/api/jobs/{job['id']}/results").text.splitlines()]
    assert sum(1 for x in lines if x["response"]) == 4
    assert [x["error"]["code"] for x in lines if x["error"]] == ["cancelled", "cancelled"]


def test_failed_line_is_a_400_response_in_the_output(api: API) -> None:
    client, _ = api
    job = client.post("/api/jobs", json={"requests": [line("long")]}).json()
    runner_id = register(client)
    lease = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    client.post(f"/api/runners/{runner_id}/complete", json={
        "lease_id": lease["lease"]["id"], "started_at": 0, "ended_at": 1,
        "results": [{"request_id": lease["requests"][0]["id"], "finish_reason": "error",
                     "error": "prompt too long"}]})
    (out,) = [json.loads(x) for x in client.get(f"/api/jobs/{job['id']}/results").text.splitlines()]
    assert out["response"]["status_code"] == 400
    assert out["response"]["body"]["error"]["message"] == "prompt too long"


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStore]]:
    yield from make_client(tmp_path, runner_token="s3cret-runner-token")


def test_runner_token_required_when_configured(guarded: API) -> None:
    client, _ = guarded
    body = {"name": "r", "model": "tiny-llama"}
    denied = client.post("/api/runners", json=body)
    assert denied.status_code == 401
    assert "s3cret" not in denied.text
    wrong = client.post("/api/runners", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    ok = client.post("/api/runners", json=body,
                     headers={"Authorization": "Bearer s3cret-runner-token"})
    assert ok.status_code == 201
    assert "s3cret" not in ok.text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_job_long_poll_returns_when_the_job_finishes(tmp_path: Path) -> None:
    import asyncio

    import httpx

    from stoker.api.app import create_app
    from stoker.clock import SystemClock
    from stoker.settings import load_settings

    settings = load_settings(data_dir=tmp_path, batching={"max_batch_size": 2, "max_wait_ms": 0})
    store = SQLiteStore(settings.database_path)
    transport = httpx.ASGITransport(app=create_app(settings, store, SystemClock()))
    async with httpx.AsyncClient(transport=transport, base_url="http://stoker") as client:
        job = (await client.post("/api/jobs", json={"requests": [line("a")]})).json()
        waiting = asyncio.create_task(client.get(f"/api/jobs/{job['id']}", params={"wait_s": 30}))
        reg = (await client.post("/api/runners", json={"name": "r", "model": "tiny-llama"})).json()
        runner_id = reg["runner"]["id"]
        await client.post(f"/api/runners/{runner_id}/state", json={"state": "idle"})
        lease = (await client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5})).json()
        assert not waiting.done()
        await client.post(f"/api/runners/{runner_id}/complete", json={
            "lease_id": lease["lease"]["id"], "started_at": 0, "ended_at": 1,
            "results": [{"request_id": lease["requests"][0]["id"], "text": "x"}]})
        finished = await asyncio.wait_for(waiting, timeout=10)
    assert finished.json()["status"] == "completed"
    store.close()


def test_a_report_sent_twice_counts_one_batch(api: API) -> None:
    client, store = api
    client.post("/api/jobs", json={"requests": [line(f"c{i}") for i in range(4)]})
    runner_id = register(client)
    lease = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    first, again = complete(client, runner_id, lease), complete(client, runner_id, lease)
    assert (first["recorded"], again["recorded"], again["duplicates"]) == (4, 0, 4)
    assert len(store.batch_records()) == 1
    metrics = client.get("/metrics").text
    assert 'stoker_batch_size_count{model="tiny-llama"} 1.0' in metrics
    assert 'stoker_tokens_total{kind="completion",model="tiny-llama"} 12.0' in metrics


def test_a_report_naming_another_lease_s_request_is_refused(api: API) -> None:
    client, _ = api
    client.post("/api/jobs", json={"requests": [line(f"c{i}") for i in range(6)]})
    runner_id = register(client)
    lease = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    r = client.post(f"/api/runners/{runner_id}/complete",
                    json={"lease_id": lease["lease"]["id"], "started_at": 1, "ended_at": 2,
                          "results": [{"request_id": "req_not_mine", "text": "x"}]})
    assert r.status_code == 409
    assert "did not grant" in r.json()["error"]["message"]


def test_a_runner_whose_queue_holds_only_work_pinned_elsewhere_waits_not_spins(
        api: API, monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = api
    store.submit_job(NewJob(team="default", tier="batch", priority=40, model="tiny-llama",
                            requests=[NewRequest("a", "/v1/completions", {"prompt": "x"})],
                            max_attempts=3, revision="another-revision"), now=time.time())
    runner_id = register(client)
    grants = []
    lease_batch = store.lease_batch

    def counted(*args: Any, **kwargs: Any) -> Any:
        grants.append(1)
        return lease_batch(*args, **kwargs)

    monkeypatch.setattr(store, "lease_batch", counted)  # a spy: the real grant, counted
    r = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 1.0}).json()
    assert r["lease"] is None
    # Looking again at once, then after waits doubling from 2 ms up to 0.25 s: about a dozen
    # grants in the second, not one every fraction of a millisecond.
    assert len(grants) < 30


def test_a_runners_starting_time_runs_from_its_launch_within_bounds(api: API) -> None:
    client, store = api
    now = time.time()
    starts = {}
    for name, launched in (("recent", now - 30), ("ancient", now - 100_000),
                           ("future", now + 500)):
        r = client.post("/api/runners", json={"name": name, "model": "tiny-llama",
                                              "launched_at": launched})
        assert r.status_code == 201, r.text
        starts[name] = store.runner_intervals(r.json()["runner"]["id"])[0].started_at
    assert starts["recent"] == pytest.approx(now - 30)
    assert starts["ancient"] == pytest.approx(now - 600, abs=5)  # at most 10 minutes back
    assert now <= starts["future"] <= time.time()


def test_a_job_with_a_deadline_expires_what_has_not_run(api: API) -> None:
    client, store = api
    job = client.post("/api/jobs", json={"requests": [line("a"), line("b")],
                                         "expires_after_s": 60}).json()
    assert job["expires_at"] == pytest.approx(job["created_at"] + 60)
    assert job["expired"] is False
    assert store.expire_jobs(now=job["created_at"] + 61) == [job["id"]]
    after = client.get(f"/api/jobs/{job['id']}").json()
    assert (after["status"], after["expired"]) == ("cancelled", True)
    assert after["request_counts"]["cancelled"] == 2
    refused = client.post("/api/jobs", json={"requests": [line("c")], "expires_after_s": 0})
    assert refused.status_code == 422
    assert "expires_after_s" in refused.json()["error"]["message"]
