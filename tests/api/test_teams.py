"""Teams: tokens, isolation, tiers, quotas, the breaker, idempotency, supersede, cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import line, make_client

API = tuple[TestClient, SQLiteStore]
EVALS = {"Authorization": "Bearer evals-token-123"}
BATCH = {"Authorization": "Bearer batch-token-456"}
RUNNER = {"Authorization": "Bearer runner-token-789"}


@pytest.fixture
def teams(tmp_path: Path) -> Iterator[API]:
    yield from make_client(
        tmp_path,
        runner_token="runner-token-789",
        batching={"max_batch_size": 8, "max_wait_ms": 0},
        teams={
            "evals": {"token": "evals-token-123", "tiers": ["smoke", "regression"],
                      "quotas": {"max_queued_requests": 20}},
            "pipeline": {"token": "batch-token-456", "weight": 2,
                         "quotas": {"requests_per_minute": 30},
                         "circuit_breaker": {"max_submissions": 3, "window_s": 60,
                                             "cooldown_s": 120}},
        },
    )


def submit(client: TestClient, headers: dict[str, str], n: int = 1, **options: Any) -> Any:
    body = {"requests": [line(f"c{i}", temperature=0) for i in range(n)], **options}
    return client.post("/api/jobs", json=body, headers=headers)


def test_missing_or_wrong_token_is_401(teams: API) -> None:
    client, store = teams
    assert submit(client, {}).status_code == 401
    wrong = submit(client, {"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert "nope" not in wrong.text
    assert client.get("/api/jobs").status_code == 401
    assert store.list_jobs(limit=5) == []


def test_a_team_sees_only_its_own_jobs(teams: API) -> None:
    client, _ = teams
    job = submit(client, EVALS, tier="smoke").json()
    assert client.get(f"/api/jobs/{job['id']}", headers=EVALS).json()["team"] == "evals"
    for path in (f"/api/jobs/{job['id']}", f"/api/jobs/{job['id']}/results",
                 f"/api/jobs/{job['id']}/batches"):
        assert client.get(path, headers=BATCH).status_code == 404
    assert client.post(f"/api/jobs/{job['id']}/cancel", headers=BATCH).status_code == 404
    assert client.get("/api/jobs", headers=BATCH).json()["data"] == []
    assert len(client.get("/api/jobs", headers=EVALS).json()["data"]) == 1


def test_tiers_a_team_may_not_use_are_403(teams: API) -> None:
    client, store = teams
    r = submit(client, EVALS, tier="batch")
    assert r.status_code == 403
    assert "may not submit to tier 'batch'" in r.json()["error"]["message"]
    assert store.list_jobs(limit=5) == []


def test_tier_max_prompts_is_422(teams: API) -> None:
    client, _ = teams
    r = submit(client, EVALS, n=11, tier="smoke")
    assert r.status_code == 422
    assert "at most 10 prompts" in r.json()["error"]["message"]
    assert submit(client, EVALS, n=10, tier="smoke").status_code == 201


def test_quota_is_429_with_retry_after_and_stores_nothing(teams: API) -> None:
    client, store = teams
    assert submit(client, EVALS, n=10, tier="regression").status_code == 201
    assert submit(client, EVALS, n=10, tier="regression").status_code == 201
    r = submit(client, EVALS, n=1, tier="regression")
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert "max_queued_requests" in r.json()["error"]["message"]
    assert len(store.list_jobs(limit=10)) == 2


def test_rate_quota_names_itself(teams: API) -> None:
    client, _ = teams
    assert submit(client, BATCH, n=30).status_code == 201
    r = submit(client, BATCH, n=1)
    assert r.status_code == 429
    assert "requests_per_minute" in r.json()["error"]["message"]
    assert r.headers["Retry-After"] == "2"


def test_breaker_trips_for_one_team_only(teams: API) -> None:
    client, _ = teams
    for _ in range(3):
        assert submit(client, BATCH).status_code == 201
    r = submit(client, BATCH)
    assert r.status_code == 429
    assert "paused" in r.json()["error"]["message"]
    assert r.headers["Retry-After"] == "120"
    assert submit(client, EVALS, tier="smoke").status_code == 201


def test_idempotency_key_returns_the_same_job(teams: API) -> None:
    client, store = teams
    key = {**EVALS, "Idempotency-Key": "org/repo@4f2a:smoke"}
    first = submit(client, key, n=3, tier="smoke")
    again = submit(client, key, n=3, tier="smoke")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(store.list_jobs(limit=10)) == 1


@pytest.mark.parametrize("change", [{"n": 4}, {"tier": "regression"},
                                    {"concurrency_group": "pr-9"}])
def test_a_reused_idempotency_key_with_other_work_is_a_409(teams: API,
                                                           change: dict[str, Any]) -> None:
    client, store = teams
    key = {**EVALS, "Idempotency-Key": "org/repo@4f2a:smoke"}
    first = submit(client, key, n=3, tier="smoke").json()
    other = submit(client, key, **{"n": 3, "tier": "smoke", **change})
    assert other.status_code == 409
    message = other.json()["error"]["message"]
    assert "different request" in message
    assert first["id"] in message
    assert len(store.list_jobs(limit=10)) == 1


def test_new_push_cancels_the_old_run(teams: API) -> None:
    client, _ = teams
    old = submit(client, EVALS, n=3, tier="smoke", concurrency_group="pr-42").json()
    new = submit(client, EVALS, n=3, tier="smoke", concurrency_group="pr-42",
                 cancel_in_progress=True).json()
    old_now = client.get(f"/api/jobs/{old['id']}", headers=EVALS).json()
    assert old_now["status"] == "cancelled"
    assert old_now["superseded_by"] == new["id"]
    assert old_now["request_counts"]["cancelled"] == 3
    assert client.get(f"/api/jobs/{new['id']}", headers=EVALS).json()["status"] == "queued"


def run_one_batch(client: TestClient) -> None:
    reg = client.post("/api/runners", json={"name": "r", "model": "tiny-llama"}, headers=RUNNER)
    runner_id = reg.json()["runner"]["id"]
    client.post(f"/api/runners/{runner_id}/state", json={"state": "idle"}, headers=RUNNER)
    lease = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 1},
                        headers=RUNNER).json()
    results = [{"request_id": r["id"], "text": "cached answer", "finish_reason": "stop",
                "prompt_tokens": 1, "completion_tokens": 2} for r in lease["requests"]]
    client.post(f"/api/runners/{runner_id}/complete", headers=RUNNER, json={
        "lease_id": lease["lease"]["id"], "started_at": 0, "ended_at": 1, "results": results})


def test_identical_deterministic_request_is_answered_from_cache(teams: API) -> None:
    client, store = teams
    submit(client, EVALS, tier="smoke")
    run_one_batch(client)
    repeat = submit(client, EVALS, tier="smoke").json()
    assert repeat["status"] == "completed"
    (out,) = [json.loads(x) for x in
              client.get(f"/api/jobs/{repeat['id']}/results", headers=EVALS).text.splitlines()]
    assert out["cached"] is True
    assert out["response"]["body"]["choices"][0]["text"] == "cached answer"
    assert store.counter("cache_hits") == 1
    opted_out = submit(client, EVALS, tier="smoke", cache=False).json()
    assert opted_out["status"] == "queued"


def test_sampled_request_without_seed_is_never_cached(teams: API) -> None:
    client, _ = teams
    body = {"requests": [line("s", temperature=0.7)], "tier": "smoke"}
    client.post("/api/jobs", json=body, headers=EVALS)
    run_one_batch(client)
    again = client.post("/api/jobs", json=body, headers=EVALS).json()
    assert again["status"] == "queued"


def test_teams_need_a_runner_token(tmp_path: Path) -> None:
    from stoker.errors import InvalidRequest
    from stoker.settings import load_settings

    with pytest.raises(InvalidRequest, match="runner_token"):
        load_settings(data_dir=tmp_path, teams={"a": {"token": "t"}})


def test_the_result_cache_is_a_team_s_own(teams: API) -> None:
    client, store = teams
    submit(client, EVALS, tier="smoke")
    run_one_batch(client)
    theirs = submit(client, BATCH, tier="smoke").json()
    assert theirs["status"] == "queued"  # another team's answer would say what evals asked
    assert store.counter("cache_hits") == 0


def test_teams_in_one_cache_group_share_answers(tmp_path: Path) -> None:
    shared = {"cache_group": "research"}
    for client, store in make_client(
            tmp_path, runner_token="runner-token-789",
            batching={"max_batch_size": 8, "max_wait_ms": 0},
            teams={"evals": {"token": "evals-token-123", **shared},
                   "pipeline": {"token": "batch-token-456", **shared}}):
        submit(client, EVALS, tier="smoke")
        run_one_batch(client)
        assert submit(client, BATCH, tier="smoke").json()["status"] == "completed"
        assert store.counter("cache_hits") == 1
