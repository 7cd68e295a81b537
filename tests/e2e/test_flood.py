"""The seed's bad Friday: one team floods the pool while another runs smoke evals."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Server, prompts, wait_until

pytestmark = pytest.mark.e2e

FLOOD = {"Authorization": "Bearer flood-token"}
CI = {"Authorization": "Bearer ci-token"}
MAX_WAIT_MS = 50


def test_flood_gets_429s_and_smoke_jobs_still_answer_within_a_batch(
        make_server: Callable[..., Server]) -> None:
    server = make_server(
        runner_token="runner-secret",
        batching={"max_batch_size": 8, "max_wait_ms": MAX_WAIT_MS},
        teams={
            "flood": {"token": "flood-token", "quotas": {"max_queued_requests": 150},
                      "circuit_breaker": {"max_submissions": 2000, "window_s": 60,
                                          "cooldown_s": 60}},
            "ci": {"token": "ci-token", "tiers": ["smoke"]},
        },
    )
    server.start(runners=2)
    statuses: Counter[int] = Counter()
    accepted: list[str] = []
    lock = threading.Lock()

    def flood_one(i: int, http: httpx.Client) -> None:
        r = http.post("/api/jobs", headers=FLOOD,
                      json={"requests": prompts(1, max_tokens=24), "tier": "batch",
                            "cache": False})
        with lock:
            statuses[r.status_code] += 1
            if r.status_code == 201:
                accepted.append(r.json()["id"])
            else:
                assert r.status_code == 429, r.text
                assert "Retry-After" in r.headers

    def flood() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http, \
                ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: flood_one(i, http), range(4000)))

    flooder = threading.Thread(target=flood)
    flooder.start()
    wait_until(lambda: statuses[429] > 0, timeout_s=120, what="the flood to hit its quota")
    smoke_jobs = []
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for n in range(5):
            r = http.post("/api/jobs", headers=CI,
                          json={"requests": prompts(2, max_tokens=8), "tier": "smoke",
                                "cache": False})
            assert r.status_code == 201, r.text
            job = r.json()
            smoke_jobs.append(job["id"])
            done = http.get(f"/api/jobs/{job['id']}", params={"wait_s": 60}, headers=CI).json()
            assert done["status"] == "completed", (n, done)
    flooder.join(timeout=600)
    assert statuses[201] + statuses[429] == 4000
    assert statuses[201] >= 150

    with server.db() as db:
        batch_s = db.execute("SELECT MAX(ended_at - started_at) FROM batches").fetchone()[0]
        waits = db.execute(
            "SELECT MIN(b.started_at) - j.created_at FROM jobs j "
            "JOIN results s ON s.job_id = j.id JOIN batches b ON b.id = s.batch_id "
            "WHERE j.team = 'ci' GROUP BY j.id").fetchall()
    assert len(waits) == 5
    bound = batch_s + MAX_WAIT_MS / 1000
    # The bound from the issue, plus a small allowance for HTTP and the busy 2-core machine.
    assert max(w for (w,) in waits) <= bound + 0.5, (waits, bound)

    with httpx.Client(base_url=server.url, timeout=60) as http:
        for job_id in accepted:
            done = _wait_done(http, job_id)
            assert done["request_counts"]["succeeded"] == 1
    with server.db() as db:
        total, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM results").fetchone()
    assert total == distinct == len(accepted) + 10


def _wait_done(http: httpx.Client, job_id: str) -> Any:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = http.get(f"/api/jobs/{job_id}", params={"wait_s": 30}, headers=FLOOD).json()
        if job["status"] == "completed":
            return job
    raise AssertionError(f"job {job_id} did not complete")
