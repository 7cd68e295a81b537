"""Anthropic's Message Batches past their day, through the unchanged `anthropic` SDK: what had
not run expires (``request_counts.expired``, ``expired`` result lines); what ran is kept."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from fastapi.testclient import TestClient

from stoker.api.anthropic.batches import EXPIRES_AFTER_S
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client
from tests.api.test_openai_batches import EVALS_TOKEN, PIPE_TOKEN, play_runner


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStore]]:
    yield from make_client(
        tmp_path, runner_token="runner-token-789",
        teams={"evals": {"token": EVALS_TOKEN}, "pipeline": {"token": PIPE_TOKEN}})


def sdk(client: TestClient) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url="http://testserver", api_key=EVALS_TOKEN,
                               http_client=client, max_retries=0)


def ask(custom_id: str) -> dict[str, object]:
    return {"custom_id": custom_id, "params": {
        "model": "tiny-llama", "max_tokens": 4,
        "messages": [{"role": "user", "content": f"say {custom_id}"}]}}


@pytest.mark.conformance(client="anthropic", feature="Message Batches: expiry after a day")
def test_a_batch_past_its_day_expires_what_had_not_run(
        api: tuple[TestClient, SQLiteStore]) -> None:
    http, store = api
    client = sdk(http)
    ran = client.messages.batches.create(requests=[ask("a")])  # type: ignore[list-item]
    play_runner(store)
    late = client.messages.batches.create(requests=[ask("b"), ask("c")])  # type: ignore[list-item]
    before = client.messages.batches.retrieve(late.id)
    assert before.processing_status == "in_progress"
    assert store.expire_jobs(now=time.time() + EXPIRES_AFTER_S - 60) == []
    expired = store.expire_jobs(now=time.time() + EXPIRES_AFTER_S + 1)
    assert expired == [late.id.removeprefix("msgbatch_")]  # the ended batch is left alone
    done = client.messages.batches.retrieve(late.id)
    assert done.processing_status == "ended"
    assert (done.request_counts.expired, done.request_counts.canceled) == (2, 0)
    assert done.cancel_initiated_at is None
    assert done.expires_at.timestamp() == pytest.approx(
        before.created_at.timestamp() + EXPIRES_AFTER_S, abs=1)
    results = list(client.messages.batches.results(late.id))
    assert [(r.custom_id, r.result.type) for r in results] == [("b", "expired"),
                                                               ("c", "expired")]
    kept = client.messages.batches.retrieve(ran.id)
    assert (kept.request_counts.succeeded, kept.request_counts.expired) == (1, 0)


def test_a_cancelled_batch_is_cancelled_not_expired(
        api: tuple[TestClient, SQLiteStore]) -> None:
    client = sdk(api[0])
    batch = client.messages.batches.create(requests=[ask("a")])  # type: ignore[list-item]
    cancelled = client.messages.batches.cancel(batch.id)
    assert (cancelled.request_counts.canceled, cancelled.request_counts.expired) == (1, 0)
    assert cancelled.cancel_initiated_at is not None
    assert [r.result.type for r in client.messages.batches.results(batch.id)] == ["canceled"]
