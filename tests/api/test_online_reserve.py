"""An online reserve in Stoker's own pool: runners beyond it take work that can wait; the
reserved ones stay free and take online work at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stoker.store.sqlite import SQLiteStore
from tests.api.conftest import line, make_client
from tests.api.test_jobs import complete, register

API = tuple[TestClient, SQLiteStore]


def reserved(tmp_path: Path, **reserve: Any) -> Iterator[API]:
    yield from make_client(tmp_path, batching={"max_batch_size": 4, "max_wait_ms": 0,
                                               "continuous": False},
                           models={"tiny-llama": {"online_reserve": reserve}})


@pytest.fixture
def one_kept(tmp_path: Path) -> Iterator[API]:
    yield from reserved(tmp_path, runners=1)


def lease(client: TestClient, runner_id: str, wait_s: float = 0.3) -> dict[str, Any]:
    return dict(client.post(f"/api/runners/{runner_id}/lease", json={"wait_s": wait_s}).json())


def submit(client: TestClient, n: int, tier: str, prefix: str) -> None:
    r = client.post("/api/jobs", json={"tier": tier,
                                       "requests": [line(f"{prefix}{i}", prompt=prefix)
                                                    for i in range(n)]})
    assert r.status_code == 201, r.text


def tiers(got: dict[str, Any]) -> set[str]:
    return {r["body"]["prompt"] for r in got["requests"]}


def test_the_reserved_runner_stays_free_of_batch_work_and_takes_online_at_once(
        one_kept: API) -> None:
    client, _ = one_kept
    a, b = register(client), register(client)
    submit(client, 12, "batch", "b")
    first = lease(client, a)
    assert len(first["requests"]) == 4  # lent: b stays free for online
    assert lease(client, b)["lease"] is None  # batch work waits, the reserve holds
    submit(client, 2, "online", "o")
    online = lease(client, b)
    assert tiers(online) == {"o"}
    # A finished batch frees its runner to take the next one, whatever b holds.
    complete(client, a, first)
    assert tiers(lease(client, a)) == {"b"}


def test_with_no_online_runner_free_a_lent_runner_serves_online_first(one_kept: API) -> None:
    client, _ = one_kept
    a, b = register(client), register(client)
    submit(client, 12, "batch", "b")
    first = lease(client, a)
    submit(client, 5, "online", "o")
    assert tiers(lease(client, b)) == {"o"}  # four of five online requests
    complete(client, a, first)
    # The last online request goes first on the lent runner too; batch work fills the rest.
    assert sorted(r["body"]["prompt"] for r in lease(client, a)["requests"]) == ["b", "b",
                                                                                 "b", "o"]


def test_a_fraction_of_the_warm_runners_can_be_kept(tmp_path: Path) -> None:
    for client, _ in reserved(tmp_path, fraction=0.5):
        runners = [register(client) for _ in range(4)]
        submit(client, 40, "batch", "b")
        granted = [lease(client, r)["lease"] is not None for r in runners]
        assert granted == [True, True, False, False]


def test_without_a_reserve_every_runner_takes_batch_work(tmp_path: Path) -> None:
    for client, _ in make_client(tmp_path, batching={"max_batch_size": 4, "max_wait_ms": 0,
                                                     "continuous": False}):
        runners = [register(client) for _ in range(2)]
        submit(client, 12, "batch", "b")
        assert all(lease(client, r)["lease"] is not None for r in runners)
