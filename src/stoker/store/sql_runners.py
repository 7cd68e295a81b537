"""Runners in SQL: registration, state changes with their recorded intervals, heartbeats."""

from __future__ import annotations

from stoker.core.model import Runner, RunnerInterval, RunnerState, runner_transition_allowed
from stoker.errors import Conflict, NotFound
from stoker.store import rows
from stoker.store.ids import new_id
from stoker.store.sql_base import WORK, SQLBase


class RunnersSQL(SQLBase):
    """The runner operations of :class:`stoker.store.Store`."""

    def register_runner(self, *, name: str, model: str, pid: int | None, host: str,
                        max_batch_size: int, max_wait_ms: int, now: float,
                        revision: str | None = None,
                        launched_at: float | None = None) -> Runner:
        """Record a new runner in state ``starting`` (with the checkpoint revision it was
        given to load), starting since its process was launched."""
        runner_id = new_id("runner")
        since = now if launched_at is None else min(launched_at, now)
        with self._tx() as conn:
            self._x(conn, "insert_runner", id=runner_id, name=name, model=model, pid=pid,
                    host=host, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, now=now,
                    revision=revision)
            self._x(conn, "open_interval", runner_id=runner_id, state="starting", now=since)
        return self.get_runner(runner_id)

    def get_runner(self, runner_id: str) -> Runner:
        """A runner by id."""
        row = self._one("get_runner", id=runner_id)
        if row is None:
            raise NotFound(f"no runner {runner_id!r}")
        return rows.runner_from(row)

    def list_runners(self, *, include_stopped: bool = False) -> list[Runner]:
        """Runners in registration order."""
        return [rows.runner_from(r) for r in self._all("list_runners",
                                                       include_stopped=include_stopped)]

    def set_runner_state(self, runner_id: str, state: RunnerState, *, now: float) -> Runner:
        """Move a runner to ``state``; a stopped runner's open leases are released at once."""
        with self._tx() as conn:
            row = self._x(conn, "lock_runner", id=runner_id).fetchone()
            if row is None:
                raise NotFound(f"no runner {runner_id!r}")
            current = RunnerState(row[0])
            if not runner_transition_allowed(current, state):
                raise Conflict(f"runner {runner_id} cannot go from {current} to {state}")
            if current != state:
                self._x(conn, "close_interval", runner_id=runner_id, now=now)
                self._x(conn, "open_interval", runner_id=runner_id, state=state.value, now=now)
                self._x(conn, "set_runner_state", id=runner_id, state=state.value, now=now)
            else:
                self._x(conn, "touch_runner", id=runner_id, now=now)
            if state == RunnerState.STOPPED:
                leases = self._x(conn, "open_leases_of_runner", runner_id=runner_id).fetchall()
                for (lease_id,) in leases:
                    self._release_lease(conn, lease_id, now, "abandoned")
                if leases:
                    model = self._x(conn, "get_lease", id=leases[0][0]).fetchone()[2]
                    self._announce(conn, WORK, model)
        return self.get_runner(runner_id)

    def touch_runner(self, runner_id: str, *, now: float) -> Runner:
        """Record a heartbeat; the runner comes back without its batch count (0), which the
        hot paths that call this do not need."""
        with self._tx(durable=False) as conn:
            row = self._x(conn, "touch_runner", id=runner_id, now=now).fetchone()
        if row is None:
            raise NotFound(f"no runner {runner_id!r}")
        return rows.runner_from(row)

    def stop_lost_runners(self, *, timeout_s: float, now: float) -> list[str]:
        """Stop runners that have not been heard from for ``timeout_s``."""
        lost = [r for (r,) in self._all("lost_runners", cutoff=now - timeout_s)]
        for runner_id in lost:
            self.set_runner_state(runner_id, RunnerState.STOPPED, now=now)
        return lost

    def runner_intervals(self, runner_id: str) -> list[RunnerInterval]:
        """A runner's state history, oldest first."""
        return [rows.interval_from(r) for r in self._all("runner_intervals", runner_id=runner_id)]
