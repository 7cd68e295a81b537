"""Handing batches to runners: the lease long-poll, its wake-ups, and lease expiry.

A runner's lease call is held open while the core batch former says "wait": until the batch
fills, its oldest request has waited ``max_wait_ms``, or the long-poll ends. Submissions and
requeues wake the waiters of their model at once; nothing polls in a tight loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from stoker.clock import Clock
from stoker.core.batching import BatchConfig, Dispatch, SchedulingPolicy, Wait, plan_batch
from stoker.core.commands import command_queue, queue_model
from stoker.core.continuous import TopUp, online_ask_takes, plan_top_up
from stoker.core.fair_share import FairShareState
from stoker.core.lending import OnlineReserve, may_lend_runner
from stoker.core.model import Lease, QueueGroup, Request, Runner, RunnerState
from stoker.store import Store
from stoker.store.protocol import LendCheck
from stoker.store.sql_base import WORK

log = logging.getLogger("stoker.dispatch")

#: How many runners' terms a replica remembers before starting over.
_MAX_REMEMBERED_RUNNERS = 10_000
#: After a grant comes back empty the runner looks again at once (a race lost to another
#: runner is over in milliseconds); each further empty grant waits for news twice as long as
#: the one before, from ``FIRST_EMPTY_GRANT_PAUSE_S`` up to ``EMPTY_GRANT_PAUSE_S`` (work this
#: runner may not take, such as work pinned to another revision, must not make it spin).
FIRST_EMPTY_GRANT_PAUSE_S = 0.002
EMPTY_GRANT_PAUSE_S = 0.25


def empty_grant_pause_s(empty_grants: int) -> float:
    """How long to wait for news before the next look, after ``empty_grants`` in a row."""
    if empty_grants <= 1:
        return 0.0
    return min(FIRST_EMPTY_GRANT_PAUSE_S * 2.0 ** min(empty_grants - 2, 16), EMPTY_GRANT_PAUSE_S)


def _wake(waiting: deque[asyncio.Future[None]] | None, wake: int | None) -> None:
    """Wake up to ``wake`` of ``waiting`` (all when None), oldest first."""
    budget = len(waiting) if waiting and wake is None else (wake or 0)
    while waiting and budget > 0:
        future = waiting.popleft()
        if not future.done():
            future.set_result(None)
            budget -= 1


@dataclass(frozen=True, slots=True)
class LeaseTerms:
    """How long leases last and how long a lease call may be held open."""

    ttl_s: float
    long_poll_s: float


class Dispatcher:
    """Long-polls for runners and wakes them when their model gets work."""

    def __init__(self, store: Store, clock: Clock, terms: LeaseTerms,
                 policy: SchedulingPolicy, batch_size: Callable[[str], int],
                 reserve: Callable[[str], OnlineReserve | None] = lambda _: None,
                 *, commands: bool = False) -> None:
        self._store = store
        # Whether command jobs are given out (their queue is looked at only then).
        self._commands = commands
        self._reserve = reserve
        # A reserve is checked and a grant made under the model's lock, so that two runners
        # of one replica never both take the last runner free for online work.
        self._lending_locks: dict[str, threading.Lock] = {}
        self._clock = clock
        self._terms = terms
        self._policy = policy
        self._batch_size = batch_size
        self._waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._online_waiters: dict[str, deque[asyncio.Future[None]]] = {}
        self._progress = asyncio.Event()
        self._runners: dict[str, Runner] = {}
        # Fair share is kept over many batches: each model's state from its last grant. Plans
        # run in worker threads, so the state is read and replaced under a lock.
        self._shares: dict[str, FairShareState] = {}
        self._shares_lock = threading.Lock()

    def notify(self, model: str, *, wake: int | None = None, tier: str | None = None) -> None:
        """Wake up to ``wake`` lease calls waiting on ``model`` (all of them when None).

        Waking one at a time avoids a thundering herd: a call that gets a batch wakes the next
        one while work remains, so a deep queue still reaches every idle runner quickly.
        Online-only calls (a continuous runner's headroom) wait apart and are woken only for
        work they may take (``tier``; None: any tier), so that they never use up a wake-up
        meant for a call that takes the work.
        """
        model = queue_model(model)  # a command queue's work is for its model's runners
        _wake(self._waiters.get(model), wake)
        if tier is None or online_ask_takes(tier, self._policy):
            _wake(self._online_waiters.get(model), wake)

    def waiting_calls(self, model: str) -> int:
        """How many lease calls for ``model`` wait for work now."""
        return sum(1 for waiters in (self._waiters, self._online_waiters)
                   for future in waiters.get(model, ()) if not future.done())

    def notify_work(self, model: str, requests: int | None, tier: str | None = None) -> None:
        """Work arrived: wake one waiting runner per batch it makes (all if unknown)."""
        wake = None if requests is None else -(-requests // self._batch_size(model))
        self.notify(model, wake=wake, tier=tier)

    def hear(self, channel: str, payload: str) -> None:
        """Another replica announced news: work for a model (``*``: any; ``model<TAB>n``
        or ``model<TAB>n<TAB>tier``: n new requests), or job progress."""
        if channel != WORK:
            self.notify_progress()
            return
        model, _, rest = payload.partition("\t")
        count, _, tier = rest.partition("\t")
        models = set(self._waiters) | set(self._online_waiters) if model == "*" else {model}
        for name in models:
            self.notify_work(name, int(count) if count.isdigit() else None, tier or None)

    def notify_progress(self) -> None:
        """Wake everyone waiting for jobs to move (results recorded, requests failed)."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_progress(self, timeout_s: float) -> None:
        """Wait until some job may have moved, or ``timeout_s`` passes."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout=timeout_s)

    async def lease(self, runner_id: str, wait_s: float, ask: TopUp | None = None
                    ) -> tuple[Lease, list[Request]] | None:
        """A batch for the runner, waiting up to ``wait_s``; None if none came or it drains.
        ``ask``: a continuous runner's top-up (:mod:`stoker.core.continuous`) instead of a
        whole batch.

        The hot path is one read of the queue summary and one grant: the runner's model and
        batch terms are remembered from its first call, and the grant itself refuses a runner
        that drains, so its state is read again only when a grant comes back empty or a wait
        ends.
        """
        runner = await self._runner_terms(runner_id)
        config = BatchConfig(runner.max_batch_size, runner.max_wait_ms)
        deadline = self._clock.now() + min(wait_s, self._terms.long_poll_s)
        state: RunnerState | None = None  # unknown until read again; the grant checks it
        empty_grants = 0  # grants in a row that came back empty
        waiters = self._online_waiters if ask is not None and ask.online_only else self._waiters
        waiting = waiters.setdefault(runner.model, deque())
        while True:
            # Queue up before looking, so that work arriving while we look still wakes us.
            woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting.append(woken)
            try:
                if state in (RunnerState.DRAINING, RunnerState.STOPPED):
                    return None
                decision, got, queued = await run_in_threadpool(self._try_lease, runner, config,
                                                                ask)
                now = self._clock.now()
                if isinstance(decision, Dispatch):
                    if got is not None:
                        if queued > decision.size or woken.done():
                            self.notify(runner.model, wake=1)  # pass the baton
                        return got
                    # Another runner took them first (look again at once), this one drains,
                    # or what is queued is pinned to another revision (empty for a while:
                    # wait for news, never spin); read its state, look with fresh numbers.
                    empty_grants += 1
                    if deadline - now <= 0:
                        return None
                    pause_s = empty_grant_pause_s(empty_grants)
                    if pause_s > 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(asyncio.shield(woken),
                                                   timeout=min(pause_s, deadline - now))
                else:
                    timeout = deadline - now
                    if decision.until is not None:
                        timeout = min(timeout, decision.until - now)
                    if deadline - now <= 0:
                        return None
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(woken), timeout=max(timeout, 0.0))
            finally:
                if not woken.done():
                    woken.cancel()
                    with contextlib.suppress(ValueError):
                        waiting.remove(woken)
            state = (await run_in_threadpool(self._store.get_runner, runner.id)).state

    async def _runner_terms(self, runner_id: str) -> Runner:
        """The runner as first read here: its model and batch terms never change."""
        known = self._runners.get(runner_id)
        if known is None:
            known = await run_in_threadpool(self._store.get_runner, runner_id)
            if len(self._runners) >= _MAX_REMEMBERED_RUNNERS:
                self._runners.clear()  # runners come and go; forgetting costs one read each
            self._runners[runner_id] = known
        return known

    def _try_lease(self, runner: Runner, config: BatchConfig, ask: TopUp | None
                   ) -> tuple[Dispatch | Wait, tuple[Lease, list[Request]] | None, int]:
        """Read the queue, plan a batch and lease it, in one trip to a worker thread (each
        trip back to a busy event loop is a wait): the decision, the grant if one was made,
        and how many requests were queued before it."""
        groups = self._store.queue_groups(runner.model)
        with self._shares_lock:
            share = self._shares.get(runner.model, FairShareState())
        decision, new_share = self._plan(groups, share, config, ask)
        if not isinstance(decision, Dispatch):
            if self._commands and decision.until is None and takes_commands(ask):
                return self._try_command(runner)
            return decision, None, 0
        reserve = self._reserve(runner.model)
        if reserve is None or all(online_ask_takes(p.tier, self._policy)
                                  for p in decision.picks):
            return self._grant(runner, decision, new_share, groups)
        lock = self._lending_locks.setdefault(runner.model, threading.Lock())
        with lock:
            if not self._may_lend(runner, reserve):
                return self._online_only(runner, groups, share, config, ask)
            lent = self._grant(runner, decision, new_share, groups,
                               lend_check=self._lend_check(runner, reserve))
            if lent[1] is None:
                # Another replica lent a runner meanwhile (the store's check, under the
                # model's lock there, said no): what this one may still take is online work.
                return self._online_only(runner, groups, share, config, ask)
            return lent

    def _online_only(self, runner: Runner, groups: list[QueueGroup], share: FairShareState,
                     config: BatchConfig, ask: TopUp | None
                     ) -> tuple[Dispatch | Wait, tuple[Lease, list[Request]] | None, int]:
        """The runner is kept free for online work: a grant of that alone, or a wait."""
        online = [g for g in groups if online_ask_takes(g.tier, self._policy)]
        decision, new_share = self._plan(online, share, config, ask)
        if not online or not isinstance(decision, Dispatch):
            return Wait(until=None), None, 0  # kept free: woken for online work
        return self._grant(runner, decision, new_share, groups)

    def _try_command(self, runner: Runner
                     ) -> tuple[Dispatch | Wait, tuple[Lease, list[Request]] | None, int]:
        """A command job for a runner with nothing of its model's to run: one at a time,
        oldest first by priority, and only if the online reserve lets the runner be lent
        (see :mod:`stoker.core.commands`)."""
        queue = command_queue(runner.model)
        groups = self._store.queue_groups(queue)
        if not groups:
            return Wait(until=None), None, 0
        decision, _ = plan_batch(groups, FairShareState(), BatchConfig(1, 0), self._policy,
                                 now=self._clock.now())
        if not isinstance(decision, Dispatch):
            return decision, None, 0
        reserve = self._reserve(runner.model)
        lock = self._lending_locks.setdefault(runner.model, threading.Lock())
        with lock:
            if reserve is not None and not self._may_lend(runner, reserve):
                return Wait(until=None), None, 0
            check = None if reserve is None else self._lend_check(runner, reserve)
            got = self._store.lease_batch(runner.id, queue, decision.picks,
                                          ttl_s=self._terms.ttl_s, now=self._clock.now(),
                                          lend_check=check)
        return decision, got, sum(g.queued for g in groups)

    def _plan(self, groups: list[QueueGroup], share: FairShareState, config: BatchConfig,
              ask: TopUp | None) -> tuple[Dispatch | Wait, FairShareState]:
        now = self._clock.now()
        if ask is None:
            return plan_batch(groups, share, config, self._policy, now=now)
        return plan_top_up(groups, share, ask, config, self._policy, now=now)

    def _grant(self, runner: Runner, decision: Dispatch, share: FairShareState,
               groups: list[QueueGroup], lend_check: LendCheck | None = None
               ) -> tuple[Dispatch | Wait, tuple[Lease, list[Request]] | None, int]:
        # The store marks an idle runner busy in the same statement or transaction.
        got = self._store.lease_batch(runner.id, runner.model, decision.picks,
                                      ttl_s=self._terms.ttl_s, now=self._clock.now(),
                                      lend_check=lend_check)
        if got is not None:
            with self._shares_lock:
                self._shares[runner.model] = share
        return decision, got, sum(g.queued for g in groups)

    def _may_lend(self, runner: Runner, reserve: OnlineReserve) -> bool:
        """Whether ``runner`` may take work below the online tier (see may_lend_runner), as
        this replica reads the store now: a cheap first look; the grant asks again in its
        transaction (:meth:`_lend_check`)."""
        return self._lend_check(runner, reserve)(
            self._store.warm_runners(runner.model),
            self._store.leased_tiers_by_runner(runner.model))

    def _lend_check(self, runner: Runner, reserve: OnlineReserve) -> LendCheck:
        """The reserve's check of a grant that lends ``runner``, for the store to ask with
        what it reads under the model's lending lock."""
        def check(warm: int, held: Mapping[str, frozenset[str]]) -> bool:
            lent = {r for r, tiers in held.items()
                    if any(not online_ask_takes(t, self._policy) for t in tiers)}
            return may_lend_runner(warm, len(lent - {runner.id}),
                                   already_lent=runner.id in lent, reserve=reserve)
        return check


def takes_commands(ask: TopUp | None) -> bool:
    """Whether a lease call may be given a command job: a static runner's, or a continuous
    runner's whose loop is empty (never a headroom ask for online work)."""
    return ask is None or not (ask.online_only or ask.loop_running)


class Reaper:
    """Puts the work of expired leases back, stops runners that went silent, and expires
    OpenAI batches past their completion window."""

    def __init__(self, store: Store, clock: Clock, dispatcher: Dispatcher, *,
                 runner_timeout_s: float, interval_s: float) -> None:
        self._store = store
        self._clock = clock
        self._dispatcher = dispatcher
        self._runner_timeout_s = runner_timeout_s
        self.interval_s = interval_s

    def reap_once(self) -> tuple[list[str], bool]:
        """One pass (in a worker thread): the models that got requests back, and whether any
        batch expired. The caller wakes waiters, on the event loop's thread."""
        now = self._clock.now()
        lost = self._store.stop_lost_runners(timeout_s=self._runner_timeout_s, now=now)
        if lost:
            log.warning("runners lost (no heartbeat for %.0fs): %s", self._runner_timeout_s,
                        ", ".join(lost))
        resumed = self._store.resume_staged_jobs(now=now)
        if resumed:
            log.warning("moved the staged requests of jobs whose submission stopped half "
                        "way: %s", ", ".join(resumed))
        expired = self._store.expire_openai_batches(now=now)
        if expired:
            log.warning("batches expired before finishing: %s", ", ".join(expired))
        overdue = self._store.expire_jobs(now=now)
        if overdue:
            log.warning("jobs expired before finishing: %s", ", ".join(overdue))
        expired += overdue
        return self._store.expire_leases(now=now), bool(expired)

    async def run(self) -> None:
        """Reap every ``interval_s`` until cancelled."""
        while True:
            try:
                models, expired = await run_in_threadpool(self.reap_once)
            except Exception:
                log.exception("reaper pass failed; trying again")
                models, expired = [], False
            for model in models:
                self._dispatcher.notify(model)
            if models or expired:
                self._dispatcher.notify_progress()
            await asyncio.sleep(self.interval_s)
