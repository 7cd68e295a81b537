"""Taking a lent runner back for online work, end to end: `stoker serve` with one runner
(static, or continuous with no headroom rows) of the tiny model and no runner kept in reserve;
a long batch job holds the runner; an online request arrives; the runner is told in its
heartbeat to hand the batch rows back, serves the online request, then finishes the batch job,
every request answered once and none charged an attempt for the interruption."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, wait_until

pytestmark = pytest.mark.timeout(300)


def batch_lines(n: int, max_tokens: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"b{i}", "method": "POST", "url": "/v1/completions",
             "body": {"model": "default", "prompt": f"Once upon a time {i}",
                      "max_tokens": max_tokens, "temperature": 0}} for i in range(n)]


@pytest.mark.parametrize("continuous", [False, True], ids=["static", "continuous"])
def test_a_lent_runner_hands_batch_work_back_for_an_online_request(
        make_server: Callable[..., Server], tiny_model_dir: Any, continuous: bool) -> None:
    # A continuous runner with no headroom rows: online work can join its loop only in a slot
    # that reclaimed rows leave.
    server = make_server(
        batching={"max_batch_size": 16, "max_wait_ms": 0, "continuous": continuous,
                  "online_headroom_rows": 0},
        models={"tiny-llama": {"path": str(tiny_model_dir), "max_new_tokens": 2048,
                               "online_reserve": {"runners": 0, "reclaim_grace_s": 0.0}}},
        leases={"ttl_s": 1.5, "runner_timeout_s": 10.0, "long_poll_s": 1.0, "max_attempts": 1})
    server.start(runners=1)
    job = server.submit(batch_lines(16, 600), tier="batch", cache=False)
    wait_until(lambda: server.get(f"/api/jobs/{job['id']}")["request_counts"]["running"] == 16,
               timeout_s=30, what="the runner to take the whole batch")
    online = server.submit([{"custom_id": "o", "method": "POST", "url": "/v1/completions",
                             "body": {"model": "default", "prompt": "Quick!", "max_tokens": 4,
                                      "temperature": 0}}], tier="online", cache=False)
    served = server.wait_job(online["id"], timeout_s=60)
    assert served["request_counts"]["succeeded"] == 1
    done = server.wait_job(job["id"], timeout_s=240)
    # max_attempts is 1: had the hand-back counted as an attempt, these would have failed.
    assert done["request_counts"]["succeeded"] == 16
    lines = server.results(job["id"])
    assert sorted(x["custom_id"] for x in lines) == sorted(f"b{i}" for i in range(16))
    batches = httpx.get(f"{server.url}/api/jobs/{job['id']}/batches", timeout=10).json()["data"]
    if not continuous:
        first = min(batches, key=lambda b: b["started_at"])
        assert first["job_requests"] < 16  # the first pass was cut short: rows went back
    [online_batch] = httpx.get(f"{server.url}/api/jobs/{online['id']}/batches",
                               timeout=10).json()["data"]
    last_end = max(b["ended_at"] for b in batches)
    assert online_batch["started_at"] < last_end  # served before the batch job was done
    # Answered as soon as its row was done, not when the pass it joined was over.
    assert served["finished_at"] < min(b["ended_at"] for b in batches
                                       if b["started_at"] >= online_batch["started_at"] - 1)
