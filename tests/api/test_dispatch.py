"""The dispatcher's wake-ups, driven directly over a real SQLite store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from stoker.api.dispatch import Dispatcher, LeaseTerms
from stoker.api.scheduling import build_policy, build_tiers
from stoker.clock import SystemClock
from stoker.core.continuous import TopUp
from stoker.core.model import RunnerState
from stoker.settings import load_settings
from stoker.store.protocol import NewJob, NewRequest
from stoker.store.sql_base import WORK
from stoker.store.sqlite import SQLiteStore

LONG_POLL_S = 30.0


async def _until(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("announced", [False, True], ids=["submitted-here", "announced"])
@pytest.mark.parametrize(("tier", "woken"), [("batch", "fill"), ("online", "either")])
def test_work_wakes_a_call_that_may_take_it_not_only_an_online_only_one(
        tmp_path: Path, tier: str, woken: str, announced: bool) -> None:
    """A continuous runner waits with two calls: its fill ask and its online-only headroom
    ask. One new request wakes one call; a batch-tier one must wake the fill ask even when
    the headroom ask has waited longer, or it sits out the whole long poll. The same holds
    for work another replica announces."""
    settings = load_settings(data_dir=tmp_path)
    store = SQLiteStore(settings.database_path)
    tiers = build_tiers(settings)
    dispatcher = Dispatcher(store, SystemClock(), LeaseTerms(ttl_s=30.0, long_poll_s=LONG_POLL_S),
                            build_policy(settings, tiers, {}), lambda _model: 8)
    runner = store.register_runner(name="r", model="tiny-llama", pid=None, host="h",
                                   max_batch_size=8, max_wait_ms=20, now=time.time())
    store.set_runner_state(runner.id, RunnerState.IDLE, now=time.time())

    async def scenario() -> str:
        headroom = asyncio.create_task(dispatcher.lease(
            runner.id, LONG_POLL_S, TopUp(4, online_only=True, loop_running=False)))
        await _until(lambda: dispatcher.waiting_calls("tiny-llama") == 1, 10)
        fill = asyncio.create_task(dispatcher.lease(
            runner.id, LONG_POLL_S, TopUp(8, online_only=False, loop_running=False)))
        await _until(lambda: dispatcher.waiting_calls("tiny-llama") == 2, 10)
        job = store.submit_job(NewJob(
            team="default", tier=tier, priority=tiers[tier].priority, model="tiny-llama",
            requests=[NewRequest("a", "/v1/completions", {"prompt": "x"})], max_attempts=3),
            now=time.time()).job
        if announced:  # by another replica, as PostgreSQL's NOTIFY carries it
            dispatcher.hear(WORK, f"tiny-llama\t1\t{job.tier}")
        else:
            dispatcher.notify_work("tiny-llama", 1, job.tier)
        done, _ = await asyncio.wait({headroom, fill}, timeout=5.0,
                                     return_when=asyncio.FIRST_COMPLETED)
        granted = [t for t in done if t.result() is not None]
        for task in (headroom, fill):
            task.cancel()
        assert granted, "no call took the work within 5 s of a 30 s long poll"
        return "fill" if granted[0] is fill else "headroom"

    try:
        got = asyncio.run(scenario())
    finally:
        store.close()
    assert woken == "either" or got == woken
