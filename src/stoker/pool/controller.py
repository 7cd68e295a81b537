"""The autoscaler's controller: one per model pool, in every `stoker serve`, acting only while
it holds the pool's lease in the store (so two API replicas never both start runners).

Each step reads the pool from the store (queued work per tier, warm and starting runners,
the throughput and cold start the pool measured), asks :func:`stoker.core.autoscale.decide`,
starts or stops runners through the provisioner, and records the decision with its signals
when it acts or differs from the last one recorded (a steady pool writes nothing).
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from stoker.clock import Clock
from stoker.core.autoscale import (
    AutoscaleConfig,
    AutoscaleState,
    PoolSnapshot,
    ScaleDecision,
    decide,
    tier_demand,
)
from stoker.core.model import Runner, RunnerState, Tier
from stoker.errors import StokerError
from stoker.pool.provisioner import Provisioner
from stoker.pool.watch import WARM_STATES, ExitWatch, StartWatch, look_at_pool
from stoker.store import ModelRoll, PoolDecisionRecord, PoolMeasurements, RollStatus, Store

log = logging.getLogger("stoker.pool")

@dataclass
class PoolController:
    """Sizes one model's pool, a step at a time."""

    store: Store
    provisioner: Provisioner
    config: AutoscaleConfig
    tiers: Mapping[str, Tier]
    clock: Clock
    #: This replica's name in the controller lease and the decisions it records.
    holder: str
    interval_s: float = 2.0
    assumed_completion_tokens: float = 128.0
    state: AutoscaleState = field(default_factory=AutoscaleState)
    starts: StartWatch = field(default_factory=StartWatch)
    exits: ExitWatch = field(default_factory=ExitWatch)
    _roll_sizes: dict[str, int] = field(default_factory=dict)
    _last_recorded: tuple[Any, ...] | None = None

    @property
    def model(self) -> str:
        """The model whose pool this is."""
        return self.provisioner.model

    def step(self) -> ScaleDecision | None:
        """Decide and act once; None when another replica's controller holds the pool."""
        now = self.clock.now()
        if not self.store.claim_pool_controller(self.model, self.holder,
                                                ttl_s=3 * self.interval_s, now=now):
            return None
        rolls = self.store.model_rolls(self.model, limit=1)
        if rolls and rolls[0].status == RollStatus.ROLLING:
            return self._roll_step(rolls[0], now=now)
        runners, live, _ = self._runners(now=now)
        measured = self.store.pool_measurements(self.model)
        snapshot = self.snapshot(measured, runners, live, now=now)
        decision, self.state = decide(snapshot, self.state, self.config, now=now)
        if decision.start and now < self.starts.paused_until:
            decision = replace(decision, start=0, reason="start_backoff")
        self._act(decision, now=now)
        self._record(decision, snapshot, measured, now=now)
        return decision

    def _runners(self, *, now: float) -> tuple[list[Runner], set[str], list[str]]:
        """The pool's live runners in the store, the names the provisioner still runs, and
        the runners asked for that exited before getting warm (settled on the way, see
        :class:`StartWatch`)."""
        return look_at_pool(self.store, self.provisioner, self.starts, self.exits, now=now)

    def snapshot(self, measured: PoolMeasurements, runners: list[Runner], live: set[str], *,
                 now: float) -> PoolSnapshot:
        """The pool as the store and the provisioner see it now."""
        per_request = measured.completion_tokens_per_request or self.assumed_completion_tokens
        queued: dict[str, int] = defaultdict(int)
        for group in self.store.queue_groups(self.model):
            queued[group.tier] += group.queued
        demand = tier_demand(queued, self.tiers, per_request, now=now)
        warm = {r.id: (r.state_since if r.state == RunnerState.IDLE else None)
                for r in runners if r.state in WARM_STATES}
        starting = sum(1 for r in runners if r.state == RunnerState.STARTING)
        # Started but not registered yet (the process is still importing): starting too.
        starting += len(live - {r.name for r in runners})
        return PoolSnapshot(demand, warm, starting, measured.tokens_per_runner_s,
                            measured.cold_start_s)

    def _act(self, decision: ScaleDecision, *, now: float) -> None:
        if decision.start:
            names = self.provisioner.start(decision.start)
            self.starts.started(names)
            log.info("pool %s: starting %d runner(s) (%s): %s", self.model, decision.start,
                     decision.reason, ", ".join(names))
        for runner_id in decision.stop:
            runner = self.store.get_runner(runner_id)
            log.info("pool %s: stopping runner %s (%s)", self.model, runner.name,
                     decision.reason)
            if not self.provisioner.stop(runner):
                self._drain_in_store(runner)

    def _roll_step(self, roll: ModelRoll, *, now: float) -> ScaleDecision:
        """One step of a rolling update (autoscaling waits until it ends): start a runner of
        the new checkpoint; once it is warm, drain an old one; never fewer warm runners than
        when the roll began (one more while a new one starts, as maxSurge 1); the last runner
        of a revision that open pinned requests need stays until they are done."""
        runners, _, failed = self._runners(now=now)
        warm = [r for r in runners if r.state in WARM_STATES]
        old = [r for r in warm if r.revision != roll.revision]
        size = self._roll_sizes.setdefault(roll.id, max(len(warm), self.config.min_runners))
        # A revision with pinned work open keeps a runner until that work is done.
        pinned = self.store.pinned_open_requests(self.model)
        drainable = [r for r in old if not pinned.get(r.revision or "", 0)
                     or sum(1 for w in warm if w.revision == r.revision) > 1]
        start: int = 0
        stop: tuple[str, ...] = ()
        if failed:
            self.store.end_roll(roll.id, RollStatus.FAILED,
                                f"runner {failed[0]} of revision {roll.revision} exited before "
                                "getting warm (see its log); the old runners keep serving",
                                now=now)
            reason = "roll_failed"
        elif not old and not self.starts.pending:
            self.store.end_roll(roll.id, RollStatus.DONE,
                                f"{len(warm)} runner(s) on revision {roll.revision}", now=now)
            reason = "roll_done"
        elif self.starts.pending:
            reason = "roll_waiting"
        elif len(warm) > size and not drainable:
            reason = "roll_waiting_pinned"
        elif len(warm) > size:
            stop = (min(drainable, key=lambda r: (r.state != RunnerState.IDLE,
                                                   r.state_since)).id,)
            reason = "roll_drain"
        else:
            start, reason = 1, "roll_start"
        decision = ScaleDecision(size, start, stop, reason, {}, 0.0, 0.0)
        self._act(decision, now=now)
        self._keep((reason, len(old), len(warm)), decision, {
            "roll_id": roll.id, "revision": roll.revision, "old_warm": len(old),
            "pinned_open_requests": pinned, "new_warm": len(warm) - len(old),
            "starting": len(self.starts.pending),
            "failed_starts_in_a_row": self.starts.failures_in_a_row}, now=now)
        return decision

    def _drain_in_store(self, runner: Runner) -> None:
        """A runner another process started: told to drain at its next call."""
        try:
            self.store.set_runner_state(runner.id, RunnerState.DRAINING, now=self.clock.now())
        except StokerError as exc:
            log.warning("pool %s: could not drain runner %s: %s", self.model, runner.id, exc)

    def _keep(self, key: tuple[Any, ...], decision: ScaleDecision, signals: dict[str, Any],
              *, now: float) -> None:
        """Record a decision that acts, or whose ``key`` differs from the last one recorded
        (a steady pool writes nothing)."""
        if key == self._last_recorded and not decision.start and not decision.stop:
            return
        self._last_recorded = key
        self.store.record_pool_decision(PoolDecisionRecord(
            self.model, now, self.holder, decision.desired, decision.start, decision.stop,
            decision.reason, signals))

    def _record(self, decision: ScaleDecision, snapshot: PoolSnapshot,
                measured: PoolMeasurements, *, now: float) -> None:
        signals = {
            "queued_requests": {d.tier: d.queued_requests for d in snapshot.demand},
            "queued_tokens": {d.tier: d.queued_tokens for d in snapshot.demand},
            "drain_target_s": {d.tier: d.drain_target_s for d in snapshot.demand},
            "needed_by_tier": dict(decision.needed_by_tier),
            "warm": len(snapshot.warm),
            "starting": snapshot.starting,
            "tokens_per_runner_s": decision.tokens_per_runner_s,
            "tokens_per_runner_s_measured": measured.tokens_per_runner_s is not None,
            "cold_start_s": decision.cold_start_s,
            "cold_starts_measured": measured.cold_starts_measured,
            "failed_starts_in_a_row": self.starts.failures_in_a_row,
            "min_runners": self.config.min_runners,
            "max_runners": self.config.max_runners,
        }
        self._keep((decision.desired, decision.reason, decision.start, decision.stop),
                   decision, signals, now=now)

    def run(self, stop: threading.Event) -> None:
        """Step every ``interval_s`` until ``stop``; then give the lease up."""
        try:
            while not stop.is_set():
                try:
                    self.step()
                except Exception:
                    log.exception("pool %s: autoscaler step failed; trying again",
                                  self.model)
                stop.wait(self.interval_s)
        finally:
            self.store.release_pool_controller(self.model, self.holder)
