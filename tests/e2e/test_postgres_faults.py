"""Faults on the shared store: several API replicas on one PostgreSQL database, runners that
fail over between them, and every accepted request answered exactly once whatever breaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from tests.e2e.conftest import free_port, prompts, wait_until
from tests.postgres import fresh_database

pytestmark = pytest.mark.e2e
MAX_ATTEMPTS = 4


@dataclass
class Cluster:
    """API replicas and runners sharing one PostgreSQL database."""

    url: str
    workdir: Path
    model_dir: Path
    replicas: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    runners: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_replica(self, *, long_poll_s: float = 2.0) -> str:
        port = free_port()
        data = self.workdir / f"replica-{port}"
        data.mkdir()
        config = data / "stoker.yaml"
        config.write_text(yaml.safe_dump({
            "port": port, "data_dir": str(data), "store": self.url,
            "models": {"tiny-llama": {"path": str(self.model_dir)}},
            "batching": {"max_batch_size": 8, "max_wait_ms": 20},
            "leases": {"ttl_s": 2.0, "runner_timeout_s": 4.0, "long_poll_s": long_poll_s,
                       "max_attempts": MAX_ATTEMPTS},
        }))
        base = f"http://127.0.0.1:{port}"
        self.replicas[base] = subprocess.Popen(
            [sys.executable, "-m", "stoker.cli", "serve", "--config", str(config), "--runners",
             "0"], stdout=(data / "serve.log").open("ab"), stderr=subprocess.STDOUT)
        wait_until(lambda: _healthy(base), timeout_s=60, what=f"replica {base}")
        return base

    def start(self, *, replicas: int, runners: int) -> list[str]:
        """Start ``replicas`` API replicas, then ``runners`` runners that know them all."""
        bases = [self.start_replica() for _ in range(replicas)]
        for _ in range(runners):
            self.start_runner()
        return bases

    def start_runner(self) -> subprocess.Popen[bytes]:
        servers = ",".join(self.replicas)
        log = (self.workdir / f"runner-{len(self.runners)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stoker.cli", "runner", "--server", servers, "--model",
             "tiny-llama", "--checkpoint", str(self.model_dir), "--threads", "1"],
            stdout=log, stderr=subprocess.STDOUT)
        self.runners.append(proc)
        return proc

    def live(self) -> str:
        return next(u for u, p in self.replicas.items() if p.poll() is None)

    def runner_rows(self) -> list[dict[str, Any]]:
        r = httpx.get(self.live() + "/api/runners", timeout=10)
        # While the database's connections are cut the API answers 503 (retry): no rows yet.
        if r.status_code == 503:
            return []
        assert r.status_code == 200, r.text
        return list(r.json()["data"])

    def db(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def stop(self) -> None:
        for proc in [*self.runners, *self.replicas.values()]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _healthy(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def cluster(tmp_path: Path, tiny_model_dir: Path) -> Iterator[Cluster]:
    with fresh_database() as url:
        c = Cluster(url, tmp_path, tiny_model_dir)
        try:
            yield c
        finally:
            c.stop()


class Clients:
    """Client threads that submit jobs to any replica, retrying with an Idempotency-Key on
    connection errors and 503s, as a careful client of a replicated service does."""

    def __init__(self, cluster: Cluster, jobs: int, per_job: int) -> None:
        self.cluster = cluster
        self.accepted: dict[str, str] = {}
        self._todo = list(range(jobs))
        self._per_job = per_job
        self._lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(3)]

    def start(self) -> Clients:
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=300)

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._todo:
                    return
                n = self._todo.pop()
            self._submit(n)

    def _submit(self, n: int) -> None:
        body = {"requests": prompts(self._per_job, max_tokens=16), "cache": False}
        for attempt in range(200):
            urls = list(self.cluster.replicas)
            base = urls[(n + attempt) % len(urls)]
            try:
                r = httpx.post(base + "/api/jobs", json=body, timeout=30,
                               headers={"Idempotency-Key": f"job-{n}"})
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if r.status_code in (200, 201):
                with self._lock:
                    self.accepted[f"job-{n}"] = r.json()["id"]
                return
            assert r.status_code == 503, r.text
            time.sleep(0.05)
        raise AssertionError(f"job-{n} never accepted")


def assert_all_answered_once(cluster: Cluster, job_ids: list[str], per_job: int) -> None:
    def finished() -> bool:
        try:
            with cluster.db() as db:
                (open_requests,) = db.execute(
                    "SELECT COUNT(*) FROM requests WHERE job_id = ANY(%s) AND status IN "
                    "('queued', 'leased')", (job_ids,)).fetchone()  # type: ignore[misc]
            return bool(open_requests == 0)
        except psycopg.OperationalError:
            return False

    wait_until(finished, timeout_s=240, what="every accepted request to finish", every_s=0.5)
    with cluster.db() as db:
        rows = db.execute(
            "SELECT r.status, r.attempts, (SELECT COUNT(*) FROM results s "
            "WHERE s.request_id = r.id) FROM requests r WHERE r.job_id = ANY(%s)",
            (job_ids,)).fetchall()
    assert len(rows) == len(job_ids) * per_job
    assert {status for status, _, _ in rows} == {"succeeded"}
    assert all(results == 1 for _, _, results in rows)
    assert max(attempts for _, attempts, _ in rows) <= MAX_ATTEMPTS


def _busy_runner(cluster: Cluster) -> dict[str, Any] | None:
    try:
        busy = [r for r in cluster.runner_rows() if r["batch_in_hand"] > 0]
    except httpx.HTTPError:
        return None
    return busy[0] if busy else None


def test_runner_killed_mid_batch(cluster: Cluster) -> None:
    cluster.start(replicas=2, runners=2)
    clients = Clients(cluster, jobs=12, per_job=8).start()
    victim = wait_until(lambda: _busy_runner(cluster), timeout_s=120,
                        what="a runner with a batch", every_s=0.02)
    os.kill(victim["pid"], signal.SIGKILL)
    clients.join()
    assert_all_answered_once(cluster, list(clients.accepted.values()), 8)


def test_api_replica_killed_while_work_flows(cluster: Cluster) -> None:
    first, _ = cluster.start(replicas=2, runners=2)
    clients = Clients(cluster, jobs=20, per_job=6).start()
    wait_until(lambda: len(clients.accepted) >= 4, timeout_s=120, what="some accepted jobs")
    cluster.replicas[first].kill()
    clients.join()
    assert len(clients.accepted) == 20
    assert_all_answered_once(cluster, list(clients.accepted.values()), 6)


def test_database_connections_cut_and_restored(cluster: Cluster) -> None:
    cluster.start(replicas=2, runners=2)
    clients = Clients(cluster, jobs=20, per_job=6).start()
    name = cluster.url.rsplit("/", 1)[1]
    with cluster.db() as db:
        for _ in range(3):
            wait_until(lambda: _busy_runner(cluster), timeout_s=120, what="work in flight",
                       every_s=0.02)
            (before,) = db.execute("SELECT COUNT(*) FROM batches").fetchone()  # type: ignore[misc]
            db.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            # Work resumes after each cut before the next one: batches are recorded again.
            wait_until(lambda b=before: db.execute(  # type: ignore[misc]
                "SELECT COUNT(*) FROM batches").fetchone()[0] > b,  # type: ignore[index]
                timeout_s=120, what="batches after the cut")
    clients.join()
    assert len(clients.accepted) == 20
    assert_all_answered_once(cluster, list(clients.accepted.values()), 6)


def test_stalled_runner_wakes_and_reports_late(cluster: Cluster) -> None:
    cluster.start(replicas=1, runners=2)
    clients = Clients(cluster, jobs=8, per_job=8).start()
    stalled = wait_until(lambda: _busy_runner(cluster), timeout_s=120,
                         what="a runner with a batch", every_s=0.02)
    os.kill(stalled["pid"], signal.SIGSTOP)
    with cluster.db() as db:
        wait_until(lambda: db.execute(
            "SELECT COUNT(*) FROM leases WHERE runner_id = %s AND outcome IS NOT NULL",
            (stalled["id"],)).fetchone()[0] > 0,  # type: ignore[index]
            timeout_s=60, what="the stalled runner's lease to expire")
    os.kill(stalled["pid"], signal.SIGCONT)
    clients.join()
    assert_all_answered_once(cluster, list(clients.accepted.values()), 8)


def test_work_submitted_on_one_replica_wakes_a_runner_on_another(cluster: Cluster) -> None:
    quiet = cluster.start_replica(long_poll_s=20)
    busy = cluster.start_replica(long_poll_s=20)
    log = (cluster.workdir / "pinned-runner.log").open("ab")
    # This runner knows only the first replica; the job goes to the second.
    cluster.runners.append(subprocess.Popen(
        [sys.executable, "-m", "stoker.cli", "runner", "--server", quiet, "--model",
         "tiny-llama", "--checkpoint", str(cluster.model_dir), "--threads", "1"],
        stdout=log, stderr=subprocess.STDOUT))
    wait_until(lambda: [r for r in cluster.runner_rows() if r["state"] == "idle"],
               timeout_s=60, what="the runner to be idle")
    r = httpx.post(busy + "/api/jobs", json={"requests": prompts(1), "cache": False}, timeout=30)
    job = r.json()
    with cluster.db() as db:
        wait_until(lambda: db.execute("SELECT COUNT(*) FROM batches").fetchone()[0],  # type: ignore[index]
                   timeout_s=30, what="the batch to run")
        (waited,) = db.execute(
            "SELECT (SELECT MIN(started_at) FROM batches) - created_at FROM jobs "
            "WHERE id = %s", (job["id"],)).fetchone()  # type: ignore[misc]
    # Without the announcement the runner would sleep out most of its 20 s long poll first.
    assert waited < 5.0, waited
