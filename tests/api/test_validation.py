"""Bad input gets a clear 4xx JSON error and creates nothing."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import line

API = tuple[TestClient, SQLiteStore]


def assert_refused(response: object, status: int, fragment: str, store: SQLiteStore) -> None:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert fragment.lower() in error["message"].lower()
    assert error["status"] == status
    assert "Traceback" not in response.text  # type: ignore[attr-defined]
    assert store.list_jobs(limit=10) == []
    assert store.queue_depth() == {}


def test_malformed_jsonl_names_the_line(api: API) -> None:
    client, store = api
    body = json.dumps(line("a")) + "\n{not json\n"
    r = client.post("/api/jobs", content=body, headers={"Content-Type": "application/jsonl"})
    assert_refused(r, 400, "line 2", store)


def test_invalid_utf8(api: API) -> None:
    client, store = api
    r = client.post("/api/jobs", content=b'{"requests": ["\xff\xfe"]}',
                    headers={"Content-Type": "application/json"})
    assert_refused(r, 400, "utf-8", store)


def test_json_nested_20000_deep(api: API) -> None:
    client, store = api
    deep = "[" * 20_000 + "]" * 20_000
    r = client.post("/api/jobs", content=deep, headers={"Content-Type": "application/json"})
    assert_refused(r, 400, "nested deeper", store)


def test_jsonl_line_nested_too_deep(api: API) -> None:
    client, store = api
    deep = '{"custom_id": "a", "body": ' + "[" * 5000 + "]" * 5000 + "}"
    r = client.post("/api/jobs", content=deep, headers={"Content-Type": "application/jsonl"})
    assert_refused(r, 400, "line 1", store)


def test_duplicate_custom_id(api: API) -> None:
    client, store = api
    r = client.post("/api/jobs", json={"requests": [line("x"), line("y"), line("x")]})
    assert_refused(r, 422, "custom_id 'x' is already used on line 1", store)


def test_unknown_model(api: API) -> None:
    client, store = api
    r = client.post("/api/jobs", json={"requests": [line("a", model="gpt-9")]})
    assert_refused(r, 404, "model 'gpt-9' is not served", store)


def test_oversized_body(api: API) -> None:
    client, store = api
    big = {"requests": [line("a", prompt="x" * 100_000)]}
    r = client.post("/api/jobs", json=big)
    assert_refused(r, 413, "larger than the limit", store)


def test_oversized_chunked_body_without_length(api: API) -> None:
    client, store = api

    def chunks() -> object:
        for _ in range(100):
            yield b"x" * 1024

    r = client.post("/api/jobs", content=chunks(), headers={"Content-Type": "application/json"})
    assert_refused(r, 413, "larger than the limit", store)


@pytest.mark.parametrize(("payload", "fragment"), [
    ({"requests": []}, "requests"),
    ({"requests": [line("a")], "tier": "platinum"}, "unknown tier"),
    ({"requests": [{**line("a"), "url": "/v1/embeddings"}]}, "line 1"),
    ({"requests": [{**line("a"), "body": {"prompt": "x", "n": 3}}]}, "n=1"),
    ({"requests": [{**line("a"), "body": {"prompt": "x", "temperature": 9}}]}, "temperature"),
    ({"requests": [{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"messages": []}}]}, "messages"),
    ({"requests": [line("a", model="default"), line("b", model="other")]}, "one model"),
    ({"requests": [line("a")], "surprise": 1}, "surprise"),
])
def test_unprocessable_submissions(api: API, payload: dict[str, object], fragment: str) -> None:
    client, store = api
    r = client.post("/api/jobs", json=payload)
    assert_refused(r, 422, fragment, store)


def test_not_json_at_all(api: API) -> None:
    client, store = api
    r = client.post("/api/jobs", content="hello", headers={"Content-Type": "application/json"})
    assert_refused(r, 400, "not valid json", store)


def test_unknown_job_and_route(api: API) -> None:
    client, _ = api
    assert client.get("/api/jobs/job_nope").json()["error"]["code"] == "not_found"
    assert client.get("/api/nothing-here").status_code == 404
    assert client.post("/api/jobs/job_nope/cancel").status_code == 404


def test_runner_protocol_rejects_garbage(api: API) -> None:
    client, _ = api
    r = client.post("/api/runners", json={"name": "r", "model": "nope"})
    assert r.status_code == 404
    r = client.post("/api/runners", json={"name": "r", "model": "tiny-llama", "x": 1})
    assert r.status_code == 422
    r = client.post("/api/runners/runner_missing/lease", json={"wait_s": 0})
    assert r.status_code == 404


@pytest.mark.parametrize("payload", [[line("a")], [[1, line("a")]], "text", 7])
def test_a_body_that_is_not_an_object_is_a_422(api: API, payload: object) -> None:
    client, store = api
    r = client.post("/api/jobs", json=payload)
    assert_refused(r, 422, "send a JSON object", store)
    assert client.get("/healthz").status_code == 200  # the connection and server are fine


@pytest.mark.parametrize("max_tokens", [2**63, 10_000])
def test_max_tokens_past_the_model_s_limit_is_refused_at_submit(api: API,
                                                                max_tokens: int) -> None:
    client, store = api
    r = client.post("/api/jobs", json={"requests": [line("a", max_tokens=max_tokens)]})
    assert_refused(r, 422 if max_tokens > 2**20 else 400, "max_tokens", store)
    online = client.post("/v1/completions", json={"model": "tiny-llama", "prompt": "hi",
                                                  "max_tokens": max_tokens})
    assert online.status_code in (400, 422)
    assert "max_tokens" in online.json()["error"]["message"]
    assert store.list_jobs(limit=5) == []


def test_an_upload_line_past_the_model_s_limit_is_refused_by_name(api: API) -> None:
    # The upload's largest budget is measured while it is validated; past the limit, the
    # offending line is named.
    client, store = api
    lines = [line(f"ok{i}", max_tokens=8) for i in range(5)] + [line("greedy", max_tokens=10_000)]
    r = client.post("/api/jobs", content="".join(json.dumps(x) + "\n" for x in lines),
                    headers={"Content-Type": "application/jsonl"})
    assert_refused(r, 400, "'greedy'", store)


def test_a_bad_query_option_is_a_422_not_a_500(api: API) -> None:
    # Found by the fuzzer: an empty concurrency_group failed the options' own validation.
    client, store = api
    r = client.post("/api/jobs?concurrency_group=", content=json.dumps(line("a")) + "\n",
                    headers={"Content-Type": "application/jsonl"})
    assert_refused(r, 422, "concurrency_group", store)
