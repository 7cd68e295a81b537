"""The command-job operations of the SQL stores: run logs and stop orders."""

from __future__ import annotations

from stoker.errors import LeaseLost
from stoker.store.protocol_commands import LogChunk
from stoker.store.sql_base import SQLBase


class CommandsSQL(SQLBase):
    """The command operations of :class:`stoker.store.Store`."""

    def append_command_log(self, runner_id: str, request_id: str, text: str, *,
                           now: float) -> None:
        """Keep a piece of a running command's output (see :class:`CommandStore`)."""
        with self._tx() as conn:
            kept = self._x(conn, "append_command_log", runner_id=runner_id,
                           request_id=request_id, text=text, now=now).rowcount
        if kept == 0:
            raise LeaseLost(f"runner {runner_id!r} holds no open lease on {request_id!r}")

    def command_log(self, job_id: str) -> list[LogChunk]:
        """The job's log pieces in order."""
        return [LogChunk(str(lease), str(runner), float(at), str(text))
                for lease, runner, at, text in self._all("command_log", job_id=job_id)]

    def cancelled_leased_requests(self, runner_id: str) -> list[str]:
        """The runner's leased requests of cancelled jobs."""
        return [str(rid) for (rid,) in self._all("cancelled_leased_requests",
                                                 runner_id=runner_id)]
