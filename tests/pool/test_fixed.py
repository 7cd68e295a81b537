"""A fixed local pool keeps its size: a runner whose process exits is stopped in the store at
once (its leased requests go back to the queue, not when the lease runs out) and replaced;
runners that keep dying before they get warm are restarted with back-off, each death logged
with its reason. Processes that die are a fault, so a provisioner double stands in for them
(real processes: tests/e2e/test_pool.py); the store is real."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from stoker.core.model import Runner, RunnerState
from stoker.pool.fixed import FixedPool
from stoker.pool.watch import START_BACKOFF_S
from stoker.store.sqlite import SQLiteStore
from tests.pool.conftest import ManualClock
from tests.store.test_store_contract import MODEL, lease_all, new_job, submit


@dataclass
class Processes:
    """A provisioner whose processes live until the test says they died."""

    model: str = MODEL
    asked: list[str] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    dead: dict[str, str] = field(default_factory=dict)

    def start(self, count: int) -> list[str]:
        names = [f"r{len(self.asked) + i}" for i in range(count)]
        self.asked += names
        self.running.update(names)
        return names

    def stop(self, runner: Runner) -> bool:
        return False

    def list(self) -> list[str]:
        return sorted(self.running)

    def exit_reason(self, name: str) -> str | None:
        return self.dead.get(name)

    def die(self, name: str, why: str) -> None:
        self.running.discard(name)
        self.dead[name] = why


def warm(store: SQLiteStore, name: str, now: float) -> str:
    r = store.register_runner(name=name, model=MODEL, pid=1, host="h", max_batch_size=16,
                              max_wait_ms=100, now=now)
    store.set_runner_state(r.id, RunnerState.IDLE, now=now)
    return r.id


def test_a_runner_that_dies_holding_work_gives_it_back_and_is_replaced(
        store: SQLiteStore, caplog: pytest.LogCaptureFixture) -> None:
    clock, processes = ManualClock(), Processes()
    pool = FixedPool(store, processes, 2, clock)
    assert pool.step() == ["r0", "r1"]
    victim = warm(store, "r0", clock.at)
    warm(store, "r1", clock.at)
    job = submit(store, new_job(5), now=clock.at)
    lease_all(store, victim, now=clock.at, ttl_s=600.0)
    assert store.get_job(job.id).counts.running == 5
    clock.at += 1
    processes.die("r0", "killed by SIGKILL: (last log line)")
    with caplog.at_level(logging.ERROR, logger="stoker.pool"):
        assert pool.step() == ["r2"]  # replaced in the same step
    # Back in the queue now, ten minutes before the lease would have run out.
    assert store.get_job(job.id).counts.queued == 5
    assert store.get_runner(victim).state == RunnerState.STOPPED
    assert "r0 killed by SIGKILL" in caplog.text


def test_a_drained_runner_is_not_stopped_twice_and_a_steady_pool_starts_nothing(
        store: SQLiteStore) -> None:
    clock, processes = ManualClock(), Processes()
    pool = FixedPool(store, processes, 1, clock)
    pool.step()
    rid = warm(store, "r0", clock.at)
    assert pool.step() == []
    store.set_runner_state(rid, RunnerState.DRAINING, now=clock.at)
    store.set_runner_state(rid, RunnerState.STOPPED, now=clock.at)  # drained, then exits
    processes.die("r0", "exited with status 0")
    assert pool.step() == ["r1"]
    assert [i.state for i in store.runner_intervals(rid)][-1] == RunnerState.STOPPED


def test_runners_dying_at_load_are_restarted_with_back_off_and_their_reason_logged(
        store: SQLiteStore, caplog: pytest.LogCaptureFixture) -> None:
    clock, processes = ManualClock(), Processes()
    pool = FixedPool(store, processes, 1, clock)
    with caplog.at_level(logging.ERROR, logger="stoker.pool"):
        for _ in range(8):  # each start dies before the runner registers
            for name in pool.step():
                processes.die(name, "exited with status 1: OSError: no checkpoint at /m")
            clock.at += 1
    assert len(processes.asked) == 3  # three deaths in a row, then a pause
    assert caplog.text.count("OSError: no checkpoint at /m") == 3
    clock.at += START_BACKOFF_S
    for name in pool.step():
        processes.die(name, "exited with status 1")
    assert len(processes.asked) == 4  # the pause is over: one more try
