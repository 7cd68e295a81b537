"""The pool operations in SQL: the controller lease, measurements and decisions."""

from __future__ import annotations

import json
import statistics

from stoker.errors import Conflict
from stoker.store.ids import new_id
from stoker.store.protocol_pool import ModelRoll, PoolDecisionRecord, PoolMeasurements, RollStatus
from stoker.store.sql_base import SQLBase


class PoolSQL(SQLBase):
    """The pool operations of :class:`stoker.store.Store`."""

    def claim_pool_controller(self, model: str, holder: str, *, ttl_s: float,
                              now: float) -> bool:
        """Take or renew the model pool's controller lease (see :class:`PoolStore`)."""
        with self._tx() as conn:
            row = self._x(conn, "claim_pool_controller", model=model, holder=holder,
                          expires_at=now + ttl_s, now=now).fetchone()
        return row is not None and str(row[0]) == holder

    def release_pool_controller(self, model: str, holder: str) -> None:
        """Give the lease up."""
        with self._tx() as conn:
            self._x(conn, "release_pool_controller", model=model, holder=holder)

    def warm_runners(self, model: str) -> int:
        """The model's idle and busy runners."""
        return int(self._one("warm_runners", model=model)[0])

    def leased_tiers_by_runner(self, model: str) -> dict[str, frozenset[str]]:
        """The tiers each runner of ``model`` holds leased requests of."""
        found: dict[str, set[str]] = {}
        for runner_id, tier in self._all("leased_tiers_by_runner", model=model):
            found.setdefault(str(runner_id), set()).add(str(tier))
        return {runner: frozenset(tiers) for runner, tiers in found.items()}

    def recent_job_times(self, model: str, *, since: float,
                         limit: int = 500) -> list[tuple[str, float, float | None]]:
        """The model's newest jobs since ``since``: tier, submitted, finished."""
        return [(str(tier), float(created), None if finished is None else float(finished))
                for tier, created, finished in self._all("recent_job_times", model=model,
                                                         since=since, limit=limit)]

    def pool_measurements(self, model: str, *, batches: int = 200,
                          starts: int = 20) -> PoolMeasurements:
        """What the pool measured of itself (see :class:`PoolStore`)."""
        tokens, busy_s, requests = self._one("recent_batch_totals", model=model, limit=batches)
        cold = [float(s) for (s,) in self._all("recent_cold_starts", model=model, limit=starts)]
        return PoolMeasurements(
            tokens_per_runner_s=float(tokens) / float(busy_s) if tokens and busy_s else None,
            completion_tokens_per_request=float(tokens) / int(requests) if requests else None,
            cold_start_s=statistics.median(cold) if cold else None,
            cold_starts_measured=len(cold),
        )

    def record_pool_decision(self, decision: PoolDecisionRecord) -> None:
        """Keep a decision."""
        with self._tx() as conn:
            self._x(conn, "insert_pool_decision", id=new_id("decision"), model=decision.model,
                    decided_at=decision.decided_at, controller=decision.controller,
                    desired=decision.desired, started=decision.started,
                    stopped=json.dumps(list(decision.stopped)), reason=decision.reason,
                    signals=json.dumps(dict(decision.signals)))

    def pool_decisions(self, *, model: str | None = None,
                       limit: int = 50) -> list[PoolDecisionRecord]:
        """The latest decisions, newest first."""
        return [PoolDecisionRecord(str(m), float(at), str(c), int(d), int(s),
                                   tuple(json.loads(stopped)), str(reason), json.loads(signals))
                for m, at, c, d, s, stopped, reason, signals
                in self._all("recent_pool_decisions", model=model, limit=limit)]

    def pool_decision_counts(self) -> dict[tuple[str, str], int]:
        """Decisions recorded per (model, reason)."""
        return {(str(m), str(r)): int(n) for m, r, n in self._all("pool_decision_counts")}

    def start_roll(self, model: str, path: str, revision: str, *, now: float) -> ModelRoll:
        """Begin a rolling update (see :class:`PoolStore`)."""
        roll_id = new_id("roll")
        try:
            with self._tx() as conn:
                self._x(conn, "start_roll", id=roll_id, model=model, path=path,
                        revision=revision, now=now)
        except self.integrity_errors:
            raise Conflict(f"a roll of {model!r} is in progress; wait for it to end (stoker "
                           "pool status shows it)") from None
        return ModelRoll(roll_id, model, path, revision, RollStatus.ROLLING, now)

    def model_rolls(self, model: str, *, limit: int = 10) -> list[ModelRoll]:
        """The model's rolls, newest first."""
        return [ModelRoll(str(i), str(m), str(p), str(r), RollStatus(s), float(at),
                          None if end is None else float(end), msg)
                for i, m, p, r, s, at, end, msg
                in self._all("model_rolls", model=model, limit=limit)]

    def end_roll(self, roll_id: str, status: RollStatus, message: str, *,
                 now: float) -> None:
        """Close a roll in progress."""
        with self._tx() as conn:
            self._x(conn, "end_roll", id=roll_id, status=status.value, message=message,
                    now=now)

    def pinned_open_requests(self, model: str) -> dict[str, int]:
        """Queued or leased requests of ``model`` pinned to a revision, by revision."""
        return {str(r): int(n) for r, n in self._all("pinned_open_requests", model=model)}
