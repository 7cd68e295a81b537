"""The pool's sizing and the autoscaler's decisions, as the operator sees them (and a team
does not): /api/pool, the dashboard's data, /metrics."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from stoker.store import PoolDecisionRecord, RollStatus
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client

API = tuple[TestClient, SQLiteStore]
OPERATOR = {"Authorization": "Bearer operator-token-456"}
TEAM = {"Authorization": "Bearer team-token-123"}
MODEL = "tiny-llama"


@pytest.fixture
def autoscaled(tmp_path: Path) -> Iterator[API]:
    yield from make_client(
        tmp_path, operator_token="operator-token-456", runner_token="runner-token-789",
        teams={"evals": {"token": "team-token-123"}},
        models={MODEL: {"path": str(tmp_path / "m"),
                        "autoscale": {"min_runners": 1, "max_runners": 3}}})


def record(store: SQLiteStore, *, at: float, desired: int, reason: str) -> None:
    store.record_pool_decision(PoolDecisionRecord(
        MODEL, at, "replica-1", desired, started=desired - 1, stopped=(), reason=reason,
        signals={"queued_requests": {"batch": 500}, "cold_start_s": 9.5}))


def test_the_operator_sees_the_pool_its_sizing_and_latest_decisions(autoscaled: API) -> None:
    client, store = autoscaled
    now = time.time()
    record(store, at=now - 5, desired=2, reason="drain_target")
    record(store, at=now - 1, desired=3, reason="max_runners")
    (entry,) = client.get("/api/pool", headers=OPERATOR).json()["data"]
    assert (entry["mode"], entry["autoscale"]["max_runners"], entry["desired"]) == \
        ("autoscaled", 3, 3)
    assert [d["reason"] for d in entry["decisions"]] == ["max_runners", "drain_target"]
    assert entry["decisions"][0]["signals"]["queued_requests"] == {"batch": 500}
    assert client.get("/api/pool", headers=TEAM).status_code in (401, 403)


def test_the_dashboard_draws_decisions_for_the_operator_only(autoscaled: API) -> None:
    client, store = autoscaled
    record(store, at=time.time() - 1, desired=2, reason="drain_target")
    mine = client.get("/api/dashboard", headers=OPERATOR).json()["pool_decisions"]
    assert [(d["desired"], d["reason"]) for d in mine] == [(2, "drain_target")]
    assert client.get("/api/dashboard", headers=TEAM).json()["pool_decisions"] == []


def test_metrics_carry_the_desired_size_and_decisions_by_reason(autoscaled: API) -> None:
    client, store = autoscaled
    now = time.time()
    record(store, at=now - 2, desired=2, reason="drain_target")
    record(store, at=now - 1, desired=1, reason="keep_warm_expired")
    text = client.get("/metrics", headers=OPERATOR).text
    assert f'stoker_pool_desired_runners{{model="{MODEL}"}} 1.0' in text
    assert f'stoker_pool_decisions_total{{model="{MODEL}",reason="drain_target"}} 1.0' in text


RUNNER = {"Authorization": "Bearer runner-token-789"}


def checkpoint_dir(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text('{"model_type": "llama"}')
    return path


def register(client: TestClient) -> dict[str, object]:
    r = client.post("/api/runners", json={"name": "r", "model": MODEL}, headers=RUNNER)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_a_roll_hands_new_runners_the_new_checkpoint_until_it_fails(
        autoscaled: API, tmp_path: Path) -> None:
    client, store = autoscaled
    configured = register(client)["runner"]["revision"]  # type: ignore[index]
    assert configured  # the configured checkpoint's, derived from its files
    new = checkpoint_dir(tmp_path / "v2")
    r = client.post(f"/api/pool/{MODEL}/roll", json={"path": str(new), "revision": "v2"},
                    headers=OPERATOR)
    assert r.status_code == 202, r.text
    assert (r.json()["status"], r.json()["revision"]) == ("rolling", "v2")
    terms = register(client)
    assert terms["model_path"] == str(new)
    assert terms["runner"]["revision"] == "v2"  # type: ignore[index]
    # One roll at a time.
    again = client.post(f"/api/pool/{MODEL}/roll", json={"path": str(new)}, headers=OPERATOR)
    assert again.status_code == 409
    # A failed roll: new runners get the configured checkpoint again.
    store.end_roll(r.json()["id"], RollStatus.FAILED, "did not get warm", now=time.time())
    terms = register(client)
    assert terms["model_path"] == str(tmp_path / "m")
    assert terms["runner"]["revision"] == configured  # type: ignore[index]
    (entry,) = client.get("/api/pool", headers=OPERATOR).json()["data"]
    assert [(x["status"], x["message"]) for x in entry["rolls"]] == \
        [("failed", "did not get warm")]


def test_a_roll_needs_a_checkpoint_and_an_autoscaled_local_pool(
        autoscaled: API, tmp_path: Path) -> None:
    client, store = autoscaled
    r = client.post(f"/api/pool/{MODEL}/roll", json={"path": str(tmp_path / "nowhere")},
                    headers=OPERATOR)
    assert r.status_code == 422
    assert "not a checkpoint" in r.json()["error"]["message"]
    r = client.post("/api/pool/no-such-model/roll", json={"path": str(tmp_path)},
                    headers=OPERATOR)
    assert r.status_code == 404
    assert client.post(f"/api/pool/{MODEL}/roll", json={"path": str(tmp_path)},
                       headers=TEAM).status_code in (401, 403)
    assert store.model_rolls(MODEL) == []


def test_a_roll_to_the_revision_already_running_is_refused(autoscaled: API,
                                                           tmp_path: Path) -> None:
    client, store = autoscaled
    new = checkpoint_dir(tmp_path / "v2")
    first = client.post(f"/api/pool/{MODEL}/roll", json={"path": str(new), "revision": "v2"},
                        headers=OPERATOR)
    store.end_roll(first.json()["id"], RollStatus.DONE, "1 runner(s)", now=time.time())
    again = client.post(f"/api/pool/{MODEL}/roll", json={"path": str(new), "revision": "v2"},
                        headers=OPERATOR)
    assert again.status_code == 409
    assert "already runs revision v2" in again.json()["error"]["message"]
    assert len(store.model_rolls(MODEL)) == 1
