"""What a pool watches of its runners' lives: starts that fail before the runner gets warm
(so starting backs off instead of looping), and runners that exit while the store still counts
them (so their leased requests go back to the queue at once, not when the lease runs out).
Both the autoscaler's controller and a fixed local pool use them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from stoker.core.model import Runner, RunnerState
from stoker.errors import StokerError
from stoker.pool.provisioner import Provisioner
from stoker.store import Store

log = logging.getLogger("stoker.pool")

__all__ = ["FAILED_STARTS_BEFORE_BACKOFF", "MAX_START_BACKOFF_S", "START_BACKOFF_S",
           "WARM_STATES", "ExitWatch", "StartWatch", "look_at_pool"]

WARM_STATES = frozenset({RunnerState.IDLE, RunnerState.BUSY})
#: Runners that exit before they get warm this many times in a row pause starts, for
#: ``START_BACKOFF_S`` doubling with each further failure up to ``MAX_START_BACKOFF_S``.
FAILED_STARTS_BEFORE_BACKOFF = 3
START_BACKOFF_S = 15.0
MAX_START_BACKOFF_S = 600.0


@dataclass
class StartWatch:
    """Runners asked for and not warm yet, and whether starts keep failing (a bad checkpoint,
    a broken node): the controller then stops starting runners for a while instead of
    starting one per step for ever."""

    pending: set[str] = field(default_factory=set)
    failures_in_a_row: int = 0
    paused_until: float = float("-inf")

    def started(self, names: list[str]) -> None:
        """Runners just asked for."""
        self.pending.update(names)

    def observe(self, warm_names: set[str], live_names: set[str], *, now: float) -> list[str]:
        """Settle what became warm (a success) or exited first (a failure); the failed."""
        failed = []
        for name in sorted(self.pending):
            if name in warm_names:
                self.pending.discard(name)
                self.failures_in_a_row = 0
            elif name not in live_names:
                self.pending.discard(name)
                failed.append(name)
                self.failures_in_a_row += 1
        over = self.failures_in_a_row - FAILED_STARTS_BEFORE_BACKOFF
        if failed and over >= 0:
            self.paused_until = now + min(MAX_START_BACKOFF_S, START_BACKOFF_S * 2 ** over)
        return failed

    def report(self, provisioner: Provisioner, failed: list[str]) -> None:
        """Log the runners that exited before getting warm, each with why."""
        for name in failed:
            log.error("pool %s: runner %s exited before getting warm (%d in a row): %s",
                      provisioner.model, name, self.failures_in_a_row,
                      provisioner.exit_reason(name) or "no reason known; see its log")


@dataclass
class ExitWatch:
    """The runners a provisioner has listed as running; one no longer listed has exited
    (a crash, an OOM kill, SIGKILL, or the end of a drain)."""

    seen: set[str] = field(default_factory=set)

    def settle(self, store: Store, provisioner: Provisioner, runners: list[Runner],
               live: set[str], *, now: float) -> set[str]:
        """Stop in the store each of ``runners`` (those the store counts) whose process has
        exited since the last look, which puts its leased requests back in the queue now;
        the ids stopped."""
        gone, self.seen = self.seen - live, set(live)
        stopped = set()
        for runner in runners:
            if runner.name not in gone or runner.state == RunnerState.STOPPED:
                continue
            log.error("pool %s: runner %s %s; its leased requests go back to the queue",
                      provisioner.model, runner.name,
                      provisioner.exit_reason(runner.name) or "exited")
            try:
                store.set_runner_state(runner.id, RunnerState.STOPPED, now=now)
            except StokerError as exc:  # it stopped itself meanwhile
                log.info("pool %s: runner %s: %s", provisioner.model, runner.name, exc)
                continue
            stopped.add(runner.id)
        return stopped


def look_at_pool(store: Store, provisioner: Provisioner, starts: StartWatch, exits: ExitWatch,
                 *, now: float) -> tuple[list[Runner], set[str], list[str]]:
    """The pool's runners the store counts (those just found exited are stopped and left
    out), the names the provisioner still runs, and the starts that failed (logged)."""
    runners = [r for r in store.list_runners() if r.model == provisioner.model]
    live = set(provisioner.list())
    gone = exits.settle(store, provisioner, runners, live, now=now)
    runners = [r for r in runners if r.id not in gone]
    failed = starts.observe({r.name for r in runners if r.state in WARM_STATES}, live, now=now)
    starts.report(provisioner, failed)
    return runners, live, failed
