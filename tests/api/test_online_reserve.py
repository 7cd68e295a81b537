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
from tests.runner.live_server import wait_for

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


@pytest.fixture
def reclaiming(tmp_path: Path) -> Iterator[API]:
    yield from reserved(tmp_path, runners=0, reclaim_grace_s=0.5)


def heartbeat(client: TestClient, runner_id: str, got: dict[str, Any]) -> Any:
    return client.post(f"/api/runners/{runner_id}/heartbeat",
                       json={"lease_ids": [got["lease"]["id"]]}).json()["reclaim"]


def test_queued_online_work_with_no_runner_free_reclaims_batch_rows(reclaiming: API) -> None:
    client, store = reclaiming
    a = register(client)
    submit(client, 4, "batch", "b")
    got = lease(client, a)
    assert heartbeat(client, a, got) is None  # no online work waits
    submit(client, 1, "online", "o")
    order = heartbeat(client, a, got)
    assert order["grace_s"] == 0.5
    assert sorted(order["request_ids"]) == sorted(r["id"] for r in got["requests"])
    # Handed back: queued again with the attempt not counted; the online request goes next.
    returned = [r["id"] for r in got["requests"]]
    r = client.post(f"/api/runners/{a}/complete", json={
        "lease_id": got["lease"]["id"], "started_at": 1.0, "ended_at": 2.0, "results": [],
        "returned": returned})
    assert r.status_code == 200, r.text
    rows = [row for job in store.list_jobs(limit=10) for row in store.job_results(job.id)
            if row.request_id in returned]
    assert {(row.status, row.attempts) for row in rows} == {("queued", 0)}
    assert tiers(lease(client, a)) == {"o", "b"}


def test_an_idle_runner_takes_the_online_work_instead(reclaiming: API) -> None:
    client, _ = reclaiming
    a = register(client)
    submit(client, 4, "batch", "b")
    got = lease(client, a)
    register(client)  # idle: it will take the online request
    submit(client, 1, "online", "o")
    assert heartbeat(client, a, got) is None


def test_without_a_reclaim_grace_lent_runners_finish_their_batch(tmp_path: Path) -> None:
    for client, _ in reserved(tmp_path, runners=0):
        a = register(client)
        submit(client, 4, "batch", "b")
        got = lease(client, a)
        submit(client, 1, "online", "o")
        assert heartbeat(client, a, got) is None



@pytest.fixture
def latency_target(tmp_path: Path) -> Iterator[API]:
    yield from reserved(tmp_path, runners=0, reclaim_grace_s=0.0, latency_target_s=0.3)


def test_slow_online_rows_beside_lent_work_reclaim_it_though_nothing_queues(
        latency_target: API) -> None:
    client, _ = latency_target
    a, b = register(client), register(client)
    for _ in range(3):
        submit(client, 1, "online", "o")  # three online calls
    submit(client, 4, "batch", "b")
    mixed = lease(client, a)  # the three online rows and one batch row: a full batch
    assert tiers(mixed) == {"o", "b"}
    batch_only = lease(client, b)
    assert tiers(batch_only) == {"b"}
    # Nothing queues; once the open online requests have waited past the target, the runner
    # serving them beside batch work is told to hand the batch rows back.
    orders: list[Any] = []
    wait_for(lambda: orders.append(heartbeat(client, a, mixed)) or orders[-1],
             "a reclaim order for slow online rows", timeout_s=30)
    batch_ids = {r["id"] for r in mixed["requests"] if r["body"]["prompt"] == "b"}
    assert set(orders[-1]["request_ids"]) == batch_ids
    assert heartbeat(client, b, batch_only) is None  # no online rows there to speed up
