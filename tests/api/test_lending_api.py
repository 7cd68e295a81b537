"""Lending through the API and config: a fleet needs an OpenAI-backed model and replicas to
spare; a runner may name a fleet's replica (and gets its API), never another URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.errors import InvalidRequest
from stoker.settings import load_settings
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client

FLEET: dict[str, Any] = {
    "model": "fleet-chat", "requests_per_replica": 8,
    "replicas": {"r0": {"url": "http://10.0.0.10:8000"}, "r1": {"url": "http://10.0.0.11:8000"}}}
MODELS = {"tiny-llama": {}, "fleet-chat": {"backend": "openai",
                                           "base_url": "http://10.0.0.10:8000/v1"}}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[TestClient, SQLiteStore]]:
    yield from make_client(tmp_path, models=MODELS, lending={"chat": FLEET})


def register(client: TestClient, **extra: Any) -> Any:
    return client.post("/api/runners", json={"name": "r", "model": "fleet-chat", **extra})


def test_a_runner_of_a_lent_replica_is_given_that_replicas_api(
        api: tuple[TestClient, SQLiteStore]) -> None:
    client, _ = api
    terms = register(client, replica="r1").json()
    assert terms["backend"]["base_url"] == "http://10.0.0.11:8000/v1"
    assert register(client).json()["backend"]["base_url"] == "http://10.0.0.10:8000/v1"


def test_a_replica_outside_the_models_fleets_is_refused_and_nothing_registered(
        api: tuple[TestClient, SQLiteStore]) -> None:
    client, store = api
    refused = register(client, replica="http://169.254.169.254/")
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "replica"
    assert client.post("/api/runners", json={"name": "r", "model": "tiny-llama",
                                             "replica": "r1"}).status_code == 400
    assert store.list_runners() == []


def test_the_pool_status_lists_each_fleet(api: tuple[TestClient, SQLiteStore]) -> None:
    client, _ = api
    [fleet] = client.get("/api/pool").json()["lending"]
    assert fleet == {"fleet": "chat", "model": "fleet-chat", "replicas": ["r0", "r1"],
                     "min_serving_replicas": 1, "lent": [], "needed": None, "decision": None}


def test_a_fleet_model_gets_no_runners_of_its_own(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path, models=MODELS, lending={"chat": FLEET})
    assert settings.runners_for("fleet-chat") == 0


@pytest.mark.parametrize(("change", "says"), [
    ({"model": "tiny-llama"}, "backend: openai"),
    ({"min_serving_replicas": 2}, "leaves none of its 2 replicas to lend"),
    ({"replicas": {"r0": {"url": "not a url"}}}, "url"),
])
def test_a_fleet_that_cannot_lend_is_refused(tmp_path: Path, change: dict[str, Any],
                                             says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        load_settings(data_dir=tmp_path, models=MODELS, lending={"chat": {**FLEET, **change}})
