"""Completion callbacks through the API: refused where they could reach inside, delivered
signed to a real receiver, retried with backoff, given up after the last attempt."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.core.callbacks import signature_matches
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import line, make_client
from tests.api.test_jobs import complete, register
from tests.callback_receiver import callback_receiver
from tests.e2e.conftest import wait_until

SECRET = "whsec-ci-team-0123456789"
CI = {"Authorization": "Bearer ci-token"}
OTHER = {"Authorization": "Bearer other-token"}
RUNNER = {"Authorization": "Bearer runner-token"}
API = tuple[TestClient, SQLiteStore]


def app(tmp_path: Path, **callbacks: Any) -> Iterator[API]:
    yield from make_client(
        tmp_path, runner_token="runner-token",
        teams={"ci": {"token": "ci-token", "webhook_secret": SECRET},
               "other": {"token": "other-token"}},
        callbacks={"backoff_s": 0.05, "max_backoff_s": 0.2, **callbacks})


@pytest.fixture
def local(tmp_path: Path) -> Iterator[API]:
    """Callbacks may reach this machine (the receiver runs here)."""
    yield from app(tmp_path, allowed_networks=["127.0.0.0/8"], max_attempts=3)


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[API]:
    """The default: public addresses only."""
    yield from app(tmp_path)


def submit(client: TestClient, callback_url: str, headers: dict[str, str] = CI,
           **options: Any) -> Any:
    return client.post("/api/jobs", headers=headers, json={
        "requests": [line("a"), line("b")], "callback_url": callback_url, **options})


def run_job(client: TestClient) -> None:
    client.headers.update(RUNNER)
    runner_id = register(client)
    lease = client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": 5}).json()
    complete(client, runner_id, lease)
    del client.headers["Authorization"]


def callback_state(client: TestClient, job_id: str) -> dict[str, Any]:
    return dict(client.get(f"/api/jobs/{job_id}", headers=CI).json()["callback"])


def settled(client: TestClient, job_id: str) -> dict[str, Any]:
    return dict(wait_until(
        lambda: (c := callback_state(client, job_id))["state"] != "pending" and c,
        timeout_s=20, what="the callback to be delivered or given up"))


def test_a_finished_job_is_posted_signed_to_its_callback(local: API) -> None:
    client, _ = local
    with callback_receiver() as receiver:
        job = submit(client, receiver.url + "?token=receivers-own").json()
        assert callback_state(client, job["id"])["state"] == "pending"
        run_job(client)
        state = settled(client, job["id"])
        assert (state["state"], state["attempts"], state["last_error"]) == ("delivered", 1, None)
        [delivery] = receiver.deliveries
    assert delivery.path == "/hooks/stoker?token=receivers-own"
    assert signature_matches(SECRET.encode(), delivery.body,
                             delivery.headers["X-Stoker-Signature"])
    assert delivery.headers["X-Stoker-Event"] == "job.finished"
    assert delivery.headers["X-Stoker-Delivery"] == job["id"]
    body = json.loads(delivery.body)
    assert body["job"]["id"] == job["id"]
    assert body["job"]["status"] == "completed"
    assert body["job"]["request_counts"]["succeeded"] == 2
    assert SECRET not in delivery.body.decode()


def test_a_failing_receiver_is_retried_until_it_takes_the_callback(local: API) -> None:
    client, _ = local
    with callback_receiver([503, 500]) as receiver:
        job = submit(client, receiver.url).json()
        client.post(f"/api/jobs/{job['id']}/cancel", headers=CI)  # a cancelled job is done too
        state = settled(client, job["id"])
        deliveries = receiver.deliveries
    assert (state["state"], state["attempts"]) == ("delivered", 3)
    assert [json.loads(d.body)["attempt"] for d in deliveries] == [1, 2, 3]
    assert {d.headers["X-Stoker-Delivery"] for d in deliveries} == {job["id"]}
    assert all(signature_matches(SECRET.encode(), d.body, d.headers["X-Stoker-Signature"])
               for d in deliveries)
    assert json.loads(deliveries[-1].body)["job"]["status"] == "cancelled"


def test_after_the_last_attempt_the_callback_is_given_up(local: API,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    client, _ = local
    caplog.set_level(logging.WARNING)
    with callback_receiver([500, 500, 500, 500]) as receiver:
        job = submit(client, receiver.url + "?token=receivers-own").json()
        client.post(f"/api/jobs/{job['id']}/cancel", headers=CI)
        state = settled(client, job["id"])
        assert len(receiver.deliveries) == 3  # max_attempts
    assert (state["state"], state["attempts"]) == ("failed", 3)
    assert state["last_error"] == "127.0.0.1 answered HTTP 500"
    assert state["given_up_at"] is not None
    assert "receivers-own" not in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1:9/hook", "loopback"),
    ("http://[::1]:9/hook", "loopback"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.0.0.7/hook", "private"),
    ("http://localhost:9/hook", "loopback"),
    ("ftp://example.com/hook", "http:// or https://"),
    ("https://user:pw@example.com/hook", "credentials"),
    ("http://no-such-host.invalid/hook", "does not resolve"),
])
def test_callbacks_that_could_reach_inside_are_refused_and_nothing_is_queued(
        strict: API, url: str, says: str) -> None:
    client, store = strict
    refused = submit(client, url)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["param"] == "callback_url"
    assert says in error["message"]
    assert store.list_jobs(limit=10) == []


def test_a_team_without_a_webhook_secret_cannot_ask_for_callbacks(local: API) -> None:
    client, store = local
    with callback_receiver() as receiver:
        refused = submit(client, receiver.url, headers=OTHER)
    assert refused.status_code == 400
    assert "teams.other.webhook_secret" in refused.json()["error"]["message"]
    assert store.list_jobs(limit=10) == []


def test_a_job_upload_names_its_callback_as_a_query_parameter(local: API) -> None:
    client, _ = local
    with callback_receiver() as receiver:
        text = json.dumps(line("a")) + "\n"
        job = client.post("/api/jobs", params={"callback_url": receiver.url}, content=text,
                          headers={**CI, "Content-Type": "application/jsonl"}).json()
        client.post(f"/api/jobs/{job['id']}/cancel", headers=CI)
        assert settled(client, job["id"])["state"] == "delivered"
        assert len(receiver.deliveries) == 1
