"""A runner's command work against a real server (uvicorn in a thread, SQLite): the run's
whole output reaches the store however much of it there is, and the result is recorded."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stoker.core.model import JobStatus
from stoker.runner.client import ControlPlaneClient
from stoker.runner.command import CommandTerms, CommandWork, StopOrders, is_command_work
from stoker.runner.reclaim import ReclaimInbox
from stoker.store.sqlite import SQLiteStore
from tests.runner.live_server import live_server


@pytest.fixture
def live(tmp_path: Path, tiny_model_dir: Path) -> Iterator[tuple[str, SQLiteStore]]:
    with live_server(tmp_path, tiny_model_dir, batching={"continuous": False},
                     commands={"enabled": True, "log_interval_s": 0.1},
                     leases={"ttl_s": 3.0, "long_poll_s": 0.5}) as served:
        yield served


def test_a_long_log_arrives_whole_and_the_run_is_recorded(
        live: tuple[str, SQLiteStore]) -> None:
    url, store = live
    code = "import sys; [print(f'line {i:06d} ' + 'x' * 90) for i in range(8000)]"
    job = httpx.post(url + "/api/commands", json={"argv": [sys.executable, "-c", code]},
                     timeout=30).json()
    drain = threading.Event()
    client = ControlPlaneClient(url, token=None, stop=drain)
    terms = client.register(name="t", model="tiny-llama", pid=1, host="h",
                            max_batch_size=4)
    client.set_state("idle")
    work, _ = client.lease(1.0)
    assert work is not None
    assert is_command_work(work)
    CommandWork(client, CommandTerms.from_terms(terms["commands"]), reclaim=ReclaimInbox(),
                stops=StopOrders(), drain=drain).run(work)
    assert store.get_job(job["id"]).status == JobStatus.COMPLETED
    text = "".join(chunk.text for chunk in store.command_log(job["id"]))
    lines = text.splitlines()
    assert len(lines) == 8000  # ~800 KB: shipped in pieces the server takes
    assert lines[0].startswith("line 000000 ")
    assert lines[-1].startswith("line 007999 ")
    [row] = store.job_results(job["id"])
    assert row.text is not None
    assert row.text.endswith("x" * 90 + "\n")
