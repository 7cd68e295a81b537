"""Command jobs through the API: who may submit them, what is refused (and nothing stored),
when a runner is given one, its logs, and the orders its heartbeat carries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client
from tests.api.test_jobs import complete, register
from tests.api.test_online_reserve import lease, submit

API = tuple[TestClient, SQLiteStore]
TRAINERS = {"Authorization": "Bearer trainers-token-1"}
EVALS = {"Authorization": "Bearer evals-token-2"}
RUNNER = {"Authorization": "Bearer runner-token-3"}
STATIC = {"max_batch_size": 4, "max_wait_ms": 0, "continuous": False}


def commands_on(tmp_path: Path, **overrides: Any) -> Iterator[API]:
    yield from make_client(tmp_path, batching=STATIC,
                           commands={"enabled": True, "max_grace_s": 60}, **overrides)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[API]:
    yield from commands_on(tmp_path)


def run(client: TestClient, argv: list[str] | None = None,
        headers: dict[str, str] | None = None, **body: Any) -> Any:
    return client.post("/api/commands", json={"argv": argv or ["python", "train.py"], **body},
                       headers=headers)


def test_a_command_is_a_job_of_its_model_in_a_tier_below_online(api: API) -> None:
    client, store = api
    r = run(client, env={"EPOCHS": "3"}, grace_s=12)
    assert r.status_code == 201, r.text
    job = r.json()
    assert (job["model"], job["tier"], job["request_counts"]["queued"]) == (
        "tiny-llama", "batch", 1)
    [row] = store.job_results(job["id"])
    assert row.endpoint == "command"
    assert store.queue_depth() == {("tiny-llama#command", "batch"): 1}


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"env": {"STOKER_CHECKPOINT_DIR": "/elsewhere"}}, 400, "env"),
    ({"env": {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}}, 400, "env"),
    ({"grace_s": 600}, 400, "grace_s"),
    ({"tier": "online"}, 400, "tier"),
    ({"model": "no-such-model"}, 404, "model"),
    ({"argv": []}, 422, "argv"),
    ({"argv": [""]}, 422, "argv"),
    ({"shell": True}, 422, "shell"),
])
def test_a_bad_command_is_refused_by_name_and_nothing_is_stored(
        api: API, body: dict[str, Any], status: int, param: str) -> None:
    client, store = api
    argv = body.pop("argv", ["python", "train.py"])
    r = client.post("/api/commands", json={"argv": argv, **body})
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == param
    assert store.list_jobs(limit=10) == []


def test_a_model_served_by_a_provider_has_no_accelerator_to_lend(tmp_path: Path) -> None:
    for client, store in commands_on(tmp_path, models={
            "tiny-llama": {}, "remote": {"backend": "openai",
                                         "base_url": "https://api.example.com/v1"}}):
        r = run(client, model="remote")
        assert r.status_code == 400
        assert "no accelerator" in r.json()["error"]["message"]
        assert store.list_jobs(limit=10) == []


def test_commands_are_off_unless_the_server_enables_them(tmp_path: Path) -> None:
    for client, store in make_client(tmp_path):
        r = run(client)
        assert r.status_code == 403
        assert "commands.enabled" in r.json()["error"]["message"]
        assert store.list_jobs(limit=10) == []


def test_only_teams_allowed_commands_may_submit_them(tmp_path: Path) -> None:
    for client, store in commands_on(tmp_path, runner_token="runner-token-3", teams={
            "trainers": {"token": "trainers-token-1", "commands": True},
            "evals": {"token": "evals-token-2"}}):
        refused = run(client, headers=EVALS)
        assert refused.status_code == 403
        assert "teams.evals.commands" in refused.json()["error"]["message"]
        assert run(client).status_code == 401
        assert run(client, headers=TRAINERS).status_code == 201
        assert [j.team for j in store.list_jobs(limit=10)] == ["trainers"]


def test_a_runner_takes_a_command_only_when_its_model_has_nothing_else(api: API) -> None:
    client, _ = api
    job = run(client).json()
    submit(client, 2, "batch", "b")
    a = register(client)
    first = lease(client, a)
    assert [r["endpoint"] for r in first["requests"]] == ["/v1/completions"] * 2
    complete(client, a, first)
    command = lease(client, a)
    [request] = command["requests"]
    assert (request["endpoint"], request["job_id"]) == ("command", job["id"])
    assert request["body"]["argv"] == ["python", "train.py"]


def test_a_continuous_runners_empty_loop_takes_a_command_but_headroom_asks_never(
        api: API) -> None:
    client, _ = api
    run(client)
    a = register(client)

    def ask(**top_up: Any) -> Any:
        return client.post(f"/api/runners/{a}/lease", json={
            "wait_s": 0.2, "top_up": {"max_rows": 4, **top_up}}).json()

    assert ask(online_only=True)["lease"] is None
    assert ask(online_only=False, loop_running=True)["lease"] is None
    assert [r["endpoint"] for r in ask(online_only=False)["requests"]] == ["command"]


def test_the_online_reserve_holds_against_commands(tmp_path: Path) -> None:
    for client, _ in commands_on(tmp_path, models={"tiny-llama": {
            "online_reserve": {"runners": 1}}}):
        run(client)
        run(client)
        a, b = register(client), register(client)
        assert lease(client, a)["requests"][0]["endpoint"] == "command"
        assert lease(client, b)["lease"] is None  # b is kept for online work


def test_logs_are_kept_from_the_runner_running_the_command_and_read_by_its_team(
        tmp_path: Path) -> None:
    for client, _ in commands_on(tmp_path, runner_token="runner-token-3", teams={
            "trainers": {"token": "trainers-token-1", "commands": True},
            "evals": {"token": "evals-token-2"}}):
        job = run(client, headers=TRAINERS).json()
        r = client.post("/api/runners", json={"name": "t", "model": "tiny-llama"},
                        headers=RUNNER)
        assert r.json()["commands"]["checkpoint_root"].endswith("checkpoints")
        a = r.json()["runner"]["id"]
        client.post(f"/api/runners/{a}/state", json={"state": "idle"}, headers=RUNNER)
        got = client.post(f"/api/runners/{a}/lease", json={"wait_s": 0.2},
                          headers=RUNNER).json()
        rid = got["requests"][0]["id"]
        for text in ("starting on cpu\n", "step 200 loss 0.5\n"):
            shipped = client.post(f"/api/runners/{a}/logs", headers=RUNNER,
                                  json={"request_id": rid, "text": text})
            assert shipped.status_code == 200, shipped.text
        logs = client.get(f"/api/jobs/{job['id']}/logs", headers=TRAINERS)
        assert logs.status_code == 200
        assert logs.text == (f"=== run 1 on runner {a} (lease {got['lease']['id']}) ===\n"
                             "starting on cpu\nstep 200 loss 0.5\n")
        assert client.get(f"/api/jobs/{job['id']}/logs", headers=EVALS).status_code == 404
        assert client.post(f"/api/runners/{a}/logs", json={"request_id": rid, "text": "x"},
                           headers=TRAINERS).status_code in (401, 403)
        forged = client.post(f"/api/runners/{a}/logs", headers=RUNNER,
                             json={"request_id": "req_not_held", "text": "x"})
        assert forged.status_code == 409


def test_a_finished_commands_result_line_carries_its_output(api: API) -> None:
    client, _ = api
    job = run(client).json()
    a = register(client)
    got = lease(client, a)
    rid = got["requests"][0]["id"]
    r = client.post(f"/api/runners/{a}/complete", json={
        "lease_id": got["lease"]["id"], "started_at": 1.0, "ended_at": 9.0,
        "results": [{"request_id": rid, "text": "done at step 400", "finish_reason": "exited"}]})
    assert r.status_code == 200, r.text
    [line] = client.get(f"/api/jobs/{job['id']}/results").text.splitlines()
    assert '"object": "command.result"' in line
    assert "done at step 400" in line


def heartbeat(client: TestClient, runner_id: str, got: dict[str, Any]) -> Any:
    return client.post(f"/api/runners/{runner_id}/heartbeat",
                       json={"lease_ids": [got["lease"]["id"]]}).json()


def test_the_heartbeat_names_a_cancelled_command_so_its_runner_stops_it(api: API) -> None:
    client, _ = api
    job = run(client).json()
    a = register(client)
    got = lease(client, a)
    assert heartbeat(client, a, got)["cancelled"] == []
    client.post(f"/api/jobs/{job['id']}/cancel")
    assert heartbeat(client, a, got)["cancelled"] == [got["requests"][0]["id"]]


def test_online_work_waiting_reclaims_a_runner_running_a_command(tmp_path: Path) -> None:
    for client, _ in commands_on(tmp_path, models={"tiny-llama": {
            "online_reserve": {"runners": 0, "reclaim_grace_s": 1.0}}}):
        run(client)
        a = register(client)
        got = lease(client, a)
        assert heartbeat(client, a, got)["reclaim"] is None
        submit(client, 1, "online", "o")
        order = heartbeat(client, a, got)["reclaim"]
        assert order["request_ids"] == [got["requests"][0]["id"]]
