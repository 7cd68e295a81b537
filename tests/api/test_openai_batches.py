"""The OpenAI Files and Batches API, driven by the official SDK, unchanged, in-process.

No runners here: the tests play the runner through the store, so what is checked is the API
(the round trip with a real model is in tests/e2e/test_openai_sdk.py).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from fastapi.testclient import TestClient
from openai.types import Completion

from stoker.core.batching import Pick
from stoker.core.model import RunnerState
from stoker.store import RequestOutcome
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client

MODEL = "tiny-llama"
EVALS_TOKEN = "evals-token-123"
PIPE_TOKEN = "pipe-token-456"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStore]]:
    yield from make_client(
        tmp_path, runner_token="runner-token-789",
        limits={"max_body_bytes": 256 * 1024},
        teams={"evals": {"token": EVALS_TOKEN, "tiers": ["smoke", "regression", "batch"]},
               "pipeline": {"token": PIPE_TOKEN}})


def sdk(client: TestClient, token: str = EVALS_TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=token, http_client=client,
                         max_retries=0)


def line(custom_id: str, *, url: str = "/v1/completions", **body: Any) -> str:
    payload = {"model": MODEL, "prompt": f"say {custom_id}", "max_tokens": 4, **body}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": payload})


def upload(client: openai.OpenAI, lines: list[str]) -> str:
    data = ("\n".join(lines) + "\n").encode()
    return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def play_runner(store: SQLiteStore, *, fail: frozenset[str] = frozenset()) -> None:
    """Lease everything queued for MODEL and report it, as a runner would."""
    now = time.time()
    runner = store.register_runner(name="t", model=MODEL, pid=None, host="h",
                                   max_batch_size=1000, max_wait_ms=0, now=now)
    store.set_runner_state(runner.id, RunnerState.IDLE, now=now)
    picks = [Pick(g.tier, g.team, g.queued) for g in store.queue_groups(MODEL)]
    got = store.lease_batch(runner.id, MODEL, picks, ttl_s=60, now=now)
    assert got is not None
    lease, requests = got
    outcomes = [RequestOutcome(r.id, error="model refused", finish_reason="error")
                if r.custom_id in fail else
                RequestOutcome(r.id, text=f"answer {r.custom_id}", finish_reason="stop",
                               prompt_tokens=3, completion_tokens=2) for r in requests]
    store.complete(lease.id, runner.id, outcomes, started_at=now, ended_at=now, now=now)


def lines_of(client: openai.OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    return [json.loads(x) for x in client.files.content(file_id).text.splitlines()]


def test_files_round_trip(api: tuple[TestClient, SQLiteStore]) -> None:
    client = sdk(api[0])
    first = upload(client, [line("a")])
    second = upload(client, [line("b"), line("c")])
    got = client.files.retrieve(second)
    assert got.purpose == "batch"
    assert got.filename == "in.jsonl"
    assert client.files.content(second).text == line("b") + "\n" + line("c") + "\n"
    assert got.bytes == len(client.files.content(second).content)
    page = client.files.list(limit=1)
    assert [f.id for f in page.data] == [second]
    assert [f.id for f in client.files.list(limit=5, after=second).data] == [first]
    assert client.files.delete(first).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(first)


def upload_bytes(client: openai.OpenAI, data: bytes) -> str:
    return client.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def test_a_file_with_bad_lines_fails_validation_naming_each_line(
        api: tuple[TestClient, SQLiteStore]) -> None:
    # As the Batch API does: every kind of bad line fails the batch before anything runs.
    http, store = api
    client = sdk(http)
    lines = [line("ok-1"), "{not json", line("ok-2"), line("bad-model", model="nope"),
             line("wrong-url", url="/v1/chat/completions"), line("ok-1")]
    data = "\n".join(lines).encode() + b'\n{"custom_id": "\xff"}\n'
    batch = client.batches.create(input_file_id=upload_bytes(client, data),
                                  endpoint="/v1/completions", completion_window="24h")
    assert batch.status == "failed"
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_json"), (4, "model_not_found"), (5, "mismatched_endpoint"),
        (6, "duplicate_custom_id"), (7, "invalid_utf8")]
    assert all(e.message and e.message.startswith(f"line {e.line}:")
               for e in batch.errors.data)
    assert store.queue_depth() == {}
    assert store.list_jobs(limit=5) == []


def test_lines_end_at_newlines_only(api: tuple[TestClient, SQLiteStore]) -> None:
    # What json.dumps(..., ensure_ascii=False) writes: U+2028, U+2029 and U+0085 unescaped
    # inside strings; and a byte order mark, and CRLF line ends, as editors write them.
    http, store = api
    client = sdk(http)
    odd = "a\u2028b\u2029c\u0085d"
    rows = [json.dumps({"custom_id": f"id-{i}", "method": "POST", "url": "/v1/completions",
                        "body": {"model": MODEL, "prompt": f"{odd} {i}", "max_tokens": 4}},
                       ensure_ascii=False) for i in range(3)]
    data = "\ufeff".encode() + "\r\n".join(rows).encode() + b"\r\n"
    batch = client.batches.create(input_file_id=upload_bytes(client, data),
                                  endpoint="/v1/completions", completion_window="24h")
    assert batch.status == "in_progress", batch.errors
    assert batch.request_counts is not None
    assert batch.request_counts.total == 3
    runner = store.register_runner(name="r", model=MODEL, pid=None, host="h",
                                   max_batch_size=8, max_wait_ms=0, now=time.time())
    store.set_runner_state(runner.id, RunnerState.IDLE, now=time.time())
    got = store.lease_batch(runner.id, MODEL, [Pick("batch", "evals", 3)], ttl_s=60,
                            now=time.time())
    assert got is not None
    assert [(r.custom_id, r.body["prompt"]) for r in got[1]] == [
        (f"id-{i}", f"{odd} {i}") for i in range(3)]
    jsonl = http.post("/api/jobs", content=data, headers={
        "Content-Type": "application/jsonl", "Authorization": f"Bearer {EVALS_TOKEN}"})
    assert jsonl.status_code == 201, jsonl.text
    assert jsonl.json()["request_counts"]["total"] == 3


def test_batch_round_trip_with_a_failed_request(api: tuple[TestClient, SQLiteStore]) -> None:
    http, store = api
    client = sdk(http)
    file_id = upload(client, [line("ok-1"), line("ok-2"), line("refused")])
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/completions",
                                  completion_window="24h", metadata={"suite": "smoke-7"})
    assert batch.status == "in_progress"
    assert batch.request_counts is not None
    assert batch.request_counts.total == 3
    assert batch.expires_at == batch.created_at + 24 * 3600
    assert batch.metadata == {"suite": "smoke-7"}
    assert batch.output_file_id is None
    play_runner(store, fail=frozenset({"refused"}))
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed"
    assert done.completed_at is not None
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.usage is not None
    assert done.usage.output_tokens == 4
    outputs = lines_of(client, done.output_file_id)
    assert [o["custom_id"] for o in outputs] == ["ok-1", "ok-2"]
    for out in outputs:
        assert out["response"]["status_code"] == 200
        body = Completion.model_validate(out["response"]["body"])
        assert body.choices[0].text == f"answer {out['custom_id']}"
    (error,) = lines_of(client, done.error_file_id)
    assert (error["custom_id"], error["response"]["status_code"]) == ("refused", 400)


def test_a_file_with_no_valid_line_makes_a_failed_batch(
        api: tuple[TestClient, SQLiteStore]) -> None:
    http, store = api
    client = sdk(http)
    file_id = upload(client, [line("a", model="gpt-unknown"), line("b", model="gpt-unknown")])
    batch = client.batches.create(input_file_id=file_id, endpoint="/v1/completions",
                                  completion_window="24h")
    assert batch.status == "failed"
    assert batch.failed_at is not None
    assert batch.errors is not None
    assert batch.errors.data is not None
    assert [e.code for e in batch.errors.data] == ["model_not_found", "model_not_found"]
    assert [e.line for e in batch.errors.data] == [1, 2]
    assert store.queue_depth() == {}
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


def test_another_teams_file_and_batch_are_404(api: tuple[TestClient, SQLiteStore]) -> None:
    ours, theirs = sdk(api[0]), sdk(api[0], PIPE_TOKEN)
    file_id = upload(ours, [line("a")])
    batch = ours.batches.create(input_file_id=file_id, endpoint="/v1/completions",
                                completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        theirs.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        theirs.files.content(file_id)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.create(input_file_id=file_id, endpoint="/v1/completions",
                              completion_window="24h")
    with pytest.raises(openai.NotFoundError):
        theirs.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        theirs.batches.cancel(batch.id)
    assert theirs.batches.list().data == []
    with pytest.raises(openai.AuthenticationError):
        sdk(api[0], "wrong-token").files.list()


def test_huge_upload_is_413_and_stores_nothing(api: tuple[TestClient, SQLiteStore]) -> None:
    client = sdk(api[0])
    big = [line(f"c{i}", prompt="x" * 1000) for i in range(400)]
    with pytest.raises(openai.APIStatusError) as caught:
        upload(client, big)
    assert caught.value.status_code == 413
    assert client.files.list().data == []


def test_cancel_mid_batch_keeps_what_ran(api: tuple[TestClient, SQLiteStore]) -> None:
    http, store = api
    client = sdk(http)
    batch = client.batches.create(input_file_id=upload(client, [line(f"c{i}") for i in range(5)]),
                                  endpoint="/v1/completions", completion_window="24h")
    runner = store.register_runner(name="t", model=MODEL, pid=None, host="h",
                                   max_batch_size=2, max_wait_ms=0, now=time.time())
    store.set_runner_state(runner.id, RunnerState.IDLE, now=time.time())
    got = store.lease_batch(runner.id, MODEL, [Pick("batch", "evals", 2)], ttl_s=60,
                            now=time.time())
    assert got is not None
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    lease, leased = got
    store.complete(lease.id, runner.id, [RequestOutcome(r.id, text="t", finish_reason="stop")
                                         for r in leased], started_at=0, ended_at=0,
                   now=time.time())
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert len(lines_of(client, done.output_file_id)) == 2
    errors = lines_of(client, done.error_file_id)
    assert [e["error"]["code"] for e in errors] == ["batch_cancelled"] * 3
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed,
            done.request_counts.failed) == (5, 2, 3)


def test_expired_batch_reports_unrun_requests(api: tuple[TestClient, SQLiteStore]) -> None:
    http, store = api
    client = sdk(http)
    batch = client.batches.create(input_file_id=upload(client, [line("a"), line("b")]),
                                  endpoint="/v1/completions", completion_window="1h")
    assert store.expire_openai_batches(now=time.time() + 2 * 3600) == [batch.id]
    done = client.batches.retrieve(batch.id)
    assert done.status == "expired"
    assert done.expired_at is not None
    assert [e["error"]["code"] for e in lines_of(client, done.error_file_id)] == \
        ["batch_expired"] * 2
    assert lines_of(client, done.output_file_id) == []


def test_batches_list_pages_with_after(api: tuple[TestClient, SQLiteStore]) -> None:
    client = sdk(api[0])
    file_id = upload(client, [line("a")])
    made = [client.batches.create(input_file_id=file_id, endpoint="/v1/completions",
                                  completion_window="24h").id for _ in range(3)]
    first = client.batches.list(limit=2)
    assert [b.id for b in first.data] == made[::-1][:2]
    assert first.has_more is True
    rest = client.batches.list(limit=2, after=first.data[-1].id)
    assert [b.id for b in rest.data] == [made[0]]
    assert rest.has_more is False
    assert [b.id for b in client.batches.list(limit=2)] == made[::-1]  # the SDK pages on


@pytest.mark.parametrize(("change", "status"), [
    ({"endpoint": "/v1/embeddings"}, 400),
    ({"completion_window": "2w"}, 400),
    ({"input_file_id": "file_nope"}, 404),
    ({"metadata": {"tier": "online"}}, 403),
])
def test_bad_batch_requests_are_refused_and_change_nothing(
        api: tuple[TestClient, SQLiteStore], change: dict[str, Any], status: int) -> None:
    http, store = api
    client = sdk(http)
    params: dict[str, Any] = {"input_file_id": upload(client, [line("a")]),
                              "endpoint": "/v1/completions", "completion_window": "24h",
                              **change}
    with pytest.raises(openai.APIStatusError) as caught:
        client.batches.create(**params)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert caught.value.message
    assert client.batches.list().data == []
    assert store.queue_depth() == {}


def test_metadata_tier_routes_the_batch(api: tuple[TestClient, SQLiteStore]) -> None:
    http, store = api
    client = sdk(http)
    client.batches.create(input_file_id=upload(client, [line("a")]), endpoint="/v1/completions",
                          completion_window="24h", metadata={"tier": "regression"})
    assert store.queue_depth() == {(MODEL, "regression"): 1}
