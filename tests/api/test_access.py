"""Every route declares who may call it, and holds to it: a walk over all of the app's routes
with no token and with each other kind of token, so a route added without a lock fails here."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from stoker.api import access
from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import make_client

API = tuple[TestClient, SQLiteStore]
TEAM = {"Authorization": "Bearer team-token-123"}
RUNNER = {"Authorization": "Bearer runner-token-789"}
OPERATOR = {"Authorization": "Bearer operator-token-456"}
NONE: dict[str, str] = {}
WRONG = {"Authorization": "Bearer not-a-token"}

#: For each rule, the credentials it must refuse (401 or 403) and those it must let through.
REFUSES: dict[Callable[..., None], tuple[dict[str, str], ...]] = {
    access.public: (),
    access.client: (NONE, WRONG, RUNNER, OPERATOR),
    access.runner: (NONE, WRONG, TEAM, OPERATOR),
    access.operator: (NONE, WRONG, TEAM, RUNNER),
    access.viewer: (NONE, WRONG, RUNNER),
    access.docs: (NONE, WRONG, TEAM, RUNNER),
}
ADMITS: dict[Callable[..., None], dict[str, str]] = {
    access.public: NONE, access.client: TEAM, access.runner: RUNNER,
    access.operator: OPERATOR, access.viewer: TEAM, access.docs: OPERATOR,
}


@pytest.fixture
def teams(tmp_path: Path) -> Iterator[API]:
    # Command jobs on, for the team too: their route's own 403 must not pass for the lock.
    yield from make_client(tmp_path, runner_token="runner-token-789",
                           operator_token="operator-token-456", commands={"enabled": True},
                           teams={"evals": {"token": "team-token-123", "commands": True}})


def rule_of(route: APIRoute) -> Callable[..., None]:
    """The one access rule a route declares among its dependencies."""
    declared = [d.call for d in route.dependant.dependencies if d.call in access.RULES]
    assert len(declared) == 1, f"{route.path} declares {len(declared)} access rules, not one"
    return declared[0]  # type: ignore[return-value]


def flat(entries: list[Any]) -> Iterator[Any]:
    """The app's routes, with included routers opened up (FastAPI keeps an included router
    as one entry, holding the router it was made from)."""
    for entry in entries:
        inner = getattr(entry, "original_router", None)
        yield from flat(inner.routes) if inner is not None else [entry]


def routes(client: TestClient) -> list[tuple[str, str, Callable[..., None]]]:
    found = []
    for route in flat(client.app.routes):  # type: ignore[attr-defined]
        assert isinstance(route, APIRoute), f"{route!r} is not an API route with a rule"
        path = re.sub(r"\{[^}]+\}", "x_unknown", route.path)
        found += [(method, path, rule_of(route)) for method in sorted(route.methods)]
    return found


def test_every_route_declares_one_rule_and_it_holds(teams: API) -> None:
    client, _ = teams
    walked = routes(client)
    assert len(walked) >= 30
    for method, path, rule in walked:
        for headers in REFUSES[rule]:
            r = client.request(method, path, headers=headers)
            assert r.status_code in (401, 403), (method, path, headers, r.status_code)
            assert "traceback" not in r.text.lower()
        r = client.request(method, path, headers=ADMITS[rule])
        assert r.status_code not in (401, 403), (method, path, r.status_code, r.text)


def test_only_health_and_the_static_dashboard_are_public(teams: API) -> None:
    client, _ = teams
    public = {path for _, path, rule in routes(client) if rule is access.public}
    assert public == {"/healthz", "/dashboard"}
    assert client.get("/healthz").json() == {"status": "ok"}


def test_anyone_could_drain_every_runner_before(teams: API) -> None:
    client, _ = teams
    runner = client.post("/api/runners", json={"name": "r", "model": "tiny-llama"},
                         headers=RUNNER).json()["runner"]
    assert client.get("/api/runners").status_code == 401
    assert client.get("/api/runners", headers=TEAM).status_code == 401
    assert client.post(f"/api/runners/{runner['id']}/drain", headers=TEAM).status_code == 401
    assert client.get("/api/runners", headers=OPERATOR).json()["data"][0]["state"] == "starting"
    drained = client.post(f"/api/runners/{runner['id']}/drain", headers=OPERATOR)
    assert drained.json()["state"] == "draining"


def test_with_teams_and_no_operator_token_operator_routes_are_closed(tmp_path: Path) -> None:
    for client, _ in make_client(tmp_path, runner_token="r-token-0001",
                                 teams={"evals": {"token": "team-token-123"}}):
        r = client.get("/api/runners", headers=TEAM)
        assert r.status_code == 403
        assert "operator_token" in r.json()["error"]["message"]
        assert client.get("/openapi.json").status_code == 403


def test_docs_may_be_made_public(tmp_path: Path) -> None:
    for client, _ in make_client(tmp_path, runner_token="r-token-0001", api_docs_public=True,
                                 teams={"evals": {"token": "team-token-123"}}):
        assert client.get("/openapi.json").json()["info"]["title"] == "Stoker"
        assert client.get("/docs").status_code == 200
