"""/v1/models, /v1/chat/completions, /v1/completions and /v1/messages: what is refused before
anything is queued (answers with a real model are in tests/e2e/test_openai_sdk.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from fastapi.testclient import TestClient

from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client

API = tuple[TestClient, SQLiteStore]
ONLINE = "online-token-1"
BATCH_ONLY = "batch-token-2"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[API]:
    yield from make_client(tmp_path, runner_token="r-token", teams={
        "app": {"token": ONLINE}, "pipeline": {"token": BATCH_ONLY, "tiers": ["batch"]}})


def sdk(client: TestClient, token: str = ONLINE) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key=token, http_client=client,
                         max_retries=0)


def test_models_need_a_token_and_list_the_config(api: API) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(api[0], "nope").models.list()
    client = sdk(api[0])
    assert [m.id for m in client.models.list()] == ["tiny-llama"]
    assert client.models.retrieve("tiny-llama").owned_by == "stoker"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_before_anything_queues(api: API, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError, match="available: tiny-llama"):
        sdk(api[0]).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=stream)
    assert api[1].queue_depth() == {}


def test_bad_bodies_are_400_invalid_request_errors_naming_the_field(api: API) -> None:
    client = sdk(api[0])
    with pytest.raises(openai.BadRequestError, match="messages") as refused:
        client.chat.completions.create(model="tiny-llama", messages=[])
    assert refused.value.type == "invalid_request_error"
    assert refused.value.param == "messages"
    with pytest.raises(openai.BadRequestError, match="n=1") as refused:
        client.completions.create(model="tiny-llama", prompt="x", n=3)
    assert refused.value.param == "n"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="tiny-llama",
                                       messages=[{"role": "robot", "content": "hi"}])  # type: ignore[misc, list-item]
    assert refused.value.param == "messages.0.role"
    assert api[1].queue_depth() == {}


def test_a_team_without_the_online_tier_is_403(api: API) -> None:
    with pytest.raises(openai.PermissionDeniedError, match="online"):
        sdk(api[0], BATCH_ONLY).completions.create(model="tiny-llama", prompt="x")


def test_messages_takes_the_anthropic_key_header_and_checks_its_body(api: API) -> None:
    http = api[0]
    r = http.post("/v1/messages", headers={"x-api-key": "wrong"},
                  json={"model": "tiny-llama", "max_tokens": 5,
                        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401
    r = http.post("/v1/messages", headers={"x-api-key": ONLINE},
                  json={"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400
    assert r.json()["type"] == "error"
    assert r.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in r.json()["error"]["message"]
    assert api[1].queue_depth() == {}
