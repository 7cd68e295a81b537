"""The lending controller: one per external online fleet, in every `stoker serve`, acting only
while it holds the fleet's lease in the store (so two API replicas never both lend).

Each step scrapes every replica's vLLM metrics, asks :func:`stoker.core.lending.plan_lending`
which replicas to lend and which to take back, and acts through a :class:`ReplicaLender`:
lending a replica starts Stoker runners whose work goes to that replica's OpenAI API; taking it
back drains them (they finish the batch in hand) and stops any still running after the grace
period, whose unfinished requests return to the queue when their lease expires. Decisions are
recorded like the autoscaler's (model ``lending:<fleet>``), so the dashboard shows them.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx

from stoker.clock import Clock
from stoker.core.lending import (
    LendingDecision,
    LendingState,
    ReplicaLoad,
    lending_pool,
    plan_lending,
)
from stoker.pool.local import LocalProvisioner
from stoker.pool.vllm_metrics import scrape_replica
from stoker.settings_lending import FleetSettings
from stoker.store import PoolDecisionRecord, Store

log = logging.getLogger("stoker.pool")


class ReplicaLender(Protocol):
    """Puts Stoker's work on a replica, and takes it off."""

    def lend(self, replica: str) -> None:
        """Start serving Stoker's work on ``replica``."""
        ...

    def reclaim(self, replica: str, *, now: float) -> None:
        """Stop taking work on ``replica``: runners finish their batch in hand."""
        ...

    def settle(self, *, now: float) -> list[str]:
        """Stop what outstayed its grace period; the replicas now wholly given back."""
        ...

    def lent(self) -> list[str]:
        """Replicas with Stoker's runners on them (being reclaimed included)."""
        ...

    def give_back_all(self) -> None:
        """Take every replica back at once (shutdown)."""
        ...


@dataclass
class LocalReplicaLender:
    """Runner processes on this machine, ``runners_per_replica`` per lent replica, each sending
    its batches to the replica's OpenAI API (``stoker runner --replica NAME``)."""

    server_url: str
    fleet: FleetSettings
    log_dir: Path
    runner_token: str | None = None
    provider_key: str | None = field(default=None, repr=False)
    _runners: dict[str, LocalProvisioner] = field(default_factory=dict)
    _deadlines: dict[str, float] = field(default_factory=dict)

    def lend(self, replica: str) -> None:
        """Start the replica's runners (a replica being reclaimed is lent again as it is)."""
        self._deadlines.pop(replica, None)
        provisioner = self._runners.get(replica)
        if provisioner is not None and provisioner.list():
            return
        provisioner = LocalProvisioner(
            self.server_url, self.fleet.model, self.log_dir, runner_token=self.runner_token,
            provider_key=self.provider_key, local_model=False,
            extra_args=("--replica", replica), name_stem=f"{self.fleet.model}-{replica}")
        self._runners[replica] = provisioner
        provisioner.start(self.fleet.runners_per_replica)

    def reclaim(self, replica: str, *, now: float) -> None:
        """SIGTERM its runners (a drain); :meth:`settle` stops them after the grace period."""
        provisioner = self._runners.get(replica)
        if provisioner is None:
            return
        for process in provisioner.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        self._deadlines[replica] = now + self.fleet.reclaim_grace_s

    def settle(self, *, now: float) -> list[str]:
        """Kill runners past their grace; forget replicas whose runners are all gone."""
        returned = []
        for replica, deadline in list(self._deadlines.items()):
            provisioner = self._runners[replica]
            if now >= deadline:
                for process in provisioner.processes:
                    if process.poll() is None:
                        log.warning("runner of reclaimed replica %s outstayed its %.0fs "
                                    "grace; stopping it", replica, self.fleet.reclaim_grace_s)
                        process.kill()
            if not provisioner.list():
                del self._deadlines[replica], self._runners[replica]
                returned.append(replica)
        return returned

    def lent(self) -> list[str]:
        """Replicas whose runners are still running."""
        return sorted(r for r, p in self._runners.items() if p.list())

    def give_back_all(self) -> None:
        """Drain every lent replica's runners and wait for them (bounded by the grace)."""
        for provisioner in self._runners.values():
            provisioner.drain(timeout_s=max(1.0, self.fleet.reclaim_grace_s))
        self._runners.clear()
        self._deadlines.clear()


@dataclass
class LendingController:
    """Lends one fleet's idle replicas, a step at a time."""

    store: Store
    name: str
    fleet: FleetSettings
    lender: ReplicaLender
    clock: Clock
    #: This replica's name in the controller lease and the decisions it records.
    holder: str
    state: LendingState = field(default_factory=LendingState)
    _last_recorded: tuple[Any, ...] | None = None

    def step(self, http: httpx.Client) -> LendingDecision | None:
        """Scrape, decide, act; None when another replica holds the fleet's lease."""
        now = self.clock.now()
        if not self.store.claim_pool_controller(lending_pool(self.name), self.holder,
                                                ttl_s=self.fleet.interval_s * 3, now=now):
            return None
        loads = [self._scrape(http, name) for name in self.fleet.replicas]
        decision, self.state = plan_lending(loads, self.state, self.fleet.config(), now=now)
        for replica in decision.reclaim:
            log.info("lending %s: taking back %s (%s)", self.name, replica, decision.detail)
            self.lender.reclaim(replica, now=now)
        for replica in decision.lend:
            log.info("lending %s: lending %s (%s)", self.name, replica, decision.detail)
            self.lender.lend(replica)
        returned = self.lender.settle(now=self.clock.now())
        self._record(decision, loads, returned, now)
        return decision

    def run(self, stop: threading.Event) -> None:
        """Step every ``interval_s`` until ``stop``; then give every replica back."""
        with httpx.Client(timeout=self.fleet.scrape_timeout_s, trust_env=False) as http:
            while not stop.is_set():
                try:
                    self.step(http)
                except Exception:
                    log.exception("lending step for %s failed; trying again", self.name)
                stop.wait(self.fleet.interval_s)
        self.lender.give_back_all()
        self.store.release_pool_controller(lending_pool(self.name), self.holder)

    def _scrape(self, http: httpx.Client, replica: str) -> ReplicaLoad:
        load, problem = scrape_replica(http, replica, str(self.fleet.replicas[replica].url))
        if problem is not None:
            log.warning("lending %s: replica %s unreadable (%s); not lent, not counted",
                        self.name, replica, problem)
        return load

    def _record(self, decision: LendingDecision, loads: list[ReplicaLoad],
                returned: list[str], now: float) -> None:
        key = (decision.lend, decision.reclaim, tuple(returned), decision.needed,
               decision.serving, self.state.lent)
        if key == self._last_recorded:
            return  # a steady fleet writes nothing
        self._last_recorded = key
        self.store.record_pool_decision(PoolDecisionRecord(
            model=lending_pool(self.name), decided_at=now, controller=self.holder,
            desired=decision.needed, started=len(decision.lend), stopped=decision.reclaim,
            reason=decision.reason,
            signals={"detail": decision.detail, "demand": decision.demand,
                     "serving": decision.serving,
                     "lent": list(self.state.lent), "lend": list(decision.lend),
                     "given_back": returned,
                     "replicas": {load.name: {"running": load.running, "waiting": load.waiting,
                                              "kv_cache_usage": load.kv_cache_usage,
                                              "reachable": load.reachable}
                                  for load in loads}}))
