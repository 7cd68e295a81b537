"""The continuous runner against a real server (uvicorn in a thread, SQLite) and the real tiny
model: every result once, a broken decode step sends its rows back to the queue, and a drain
leaves nothing leased. The one double here injects that fault: a loop whose step raises."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stoker.core.continuous import LoopConfig
from stoker.core.model import RequestStatus
from stoker.runner.backends.protocol import DecodeLoop, GenerationInput, GenerationOutput
from stoker.runner.backends.transformers import TransformersBackend
from stoker.runner.client import ControlPlaneClient
from stoker.runner.continuous import ContinuousWork
from stoker.runner.reclaim import ReclaimInbox
from stoker.store.sqlite import SQLiteStore
from tests.runner.live_server import live_server, wait_for


@pytest.fixture
def live(tmp_path: Path, tiny_model_dir: Path) -> Iterator[tuple[str, SQLiteStore]]:
    with live_server(tmp_path, tiny_model_dir,
                     batching={"max_batch_size": 4, "max_wait_ms": 10},
                     leases={"ttl_s": 3.0, "long_poll_s": 0.5}) as served:
        yield served


class BreaksOnce:
    """A real decode loop whose ``fail_at``-th step raises, as an out-of-memory error would."""

    def __init__(self, loop: DecodeLoop, fail_at: int) -> None:
        self._loop, self._steps, self._fail_at = loop, 0, fail_at

    @property
    def in_flight(self) -> int:
        return self._loop.in_flight

    def join(self, key: str, spec: GenerationInput) -> GenerationOutput | None:
        return self._loop.join(key, spec)

    def step(self) -> list[tuple[str, GenerationOutput]]:
        self._steps += 1
        if self._steps == self._fail_at:
            raise RuntimeError("CUDA out of memory (injected)")
        return self._loop.step()

    def partial_text(self, key: str) -> str | None:
        return self._loop.partial_text(key)


class FaultyBackend(TransformersBackend):
    """The tiny model, whose first loop breaks at its third step."""

    opened = 0

    def open_loop(self) -> Any:
        FaultyBackend.opened += 1
        loop = super().open_loop()
        return BreaksOnce(loop, 3) if FaultyBackend.opened == 1 else loop


def run_runner(url: str, backend: TransformersBackend, drain: threading.Event,
               reclaim: ReclaimInbox | None = None
               ) -> tuple[threading.Thread, ControlPlaneClient]:
    client = ControlPlaneClient(url, token=None, stop=drain)
    client.register(name="t", model="tiny-llama", pid=1, host="h", max_batch_size=4)
    client.set_state("idle")
    work = ContinuousWork(client, backend, LoopConfig(4, 1), drain, long_poll_s=0.5,
                          reclaim=reclaim)
    thread = threading.Thread(target=work.run, daemon=True)
    thread.start()
    return thread, client


def submit(url: str, n: int, max_tokens: int | None = None) -> str:
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "tiny-llama", "prompt": f"Item {i}",
                       "max_tokens": max_tokens or 6 + i % 5, "temperature": 0}}
             for i in range(n)]
    reply = httpx.post(url + "/api/jobs", json={"requests": lines, "cache": False}, timeout=30)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["id"])


def test_a_broken_step_sends_its_rows_back_and_every_result_is_kept_once(
        live: tuple[str, SQLiteStore], tiny_model_dir: Path) -> None:
    url, store = live
    drain = threading.Event()
    thread, _ = run_runner(url, FaultyBackend(tiny_model_dir), drain)
    job_id = submit(url, 10)
    wait_for(lambda: store.get_job(job_id).finished_at is not None, "the job to finish")
    rows = store.job_results(job_id)
    assert {r.status for r in rows} == {RequestStatus.SUCCEEDED}
    # The rows of the broken loop ran again; the others once.
    assert max(r.attempts for r in rows) == 2
    assert min(r.attempts for r in rows) == 1
    assert store.counter("duplicate_results") == 0
    drain.set()
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_drain_finishes_the_rows_in_hand_and_leaves_nothing_leased(
        live: tuple[str, SQLiteStore], tiny_model_dir: Path) -> None:
    url, store = live
    drain = threading.Event()
    thread, client = run_runner(url, TransformersBackend(tiny_model_dir), drain)
    job_id = submit(url, 40)
    wait_for(lambda: store.get_job(job_id).counts.succeeded > 0, "the first results")
    client.set_state("draining")
    drain.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    counts = store.get_job(job_id).counts
    assert counts.running == 0
    assert counts.succeeded + counts.queued == 40
    assert store.list_runners()[0].state.value == "draining"


def test_a_reclaim_order_drops_its_rows_from_the_loop_and_hands_them_back(
        live: tuple[str, SQLiteStore], tiny_model_dir: Path, tmp_path: Path) -> None:
    url, store = live
    drain, inbox = threading.Event(), ReclaimInbox()
    thread, _ = run_runner(url, TransformersBackend(tiny_model_dir), drain, reclaim=inbox)
    job_id = submit(url, 4, max_tokens=400)
    wait_for(lambda: store.get_job(job_id).counts.running == 4, "the loop to hold the job")
    ids = [r.request_id for r in store.job_results(job_id)]
    inbox.receive({"request_ids": ids[:2], "grace_s": 0})
    wait_for(lambda: store.get_job(job_id).finished_at is not None, "the job to finish")
    rows = store.job_results(job_id)
    assert {r.status for r in rows} == {RequestStatus.SUCCEEDED}
    # Handed back and leased again: two leases each, and the hand-back cost no attempt.
    with sqlite3.connect(tmp_path / "stoker.db") as db:
        leases = [json.loads(x) for (x,) in db.execute("SELECT request_ids FROM leases")]
    times_leased = {rid: sum(rid in granted for granted in leases) for rid in ids}
    assert [times_leased[rid] for rid in ids[:2]] == [2, 2]
    assert [times_leased[rid] for rid in ids[2:]] == [1, 1]
    assert {r.attempts for r in rows} == {1}
    assert store.counter("duplicate_results") == 0
    drain.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
