"""The store's part in command jobs: their runs' logs, and which of a runner's leased
requests belong to cancelled jobs (a running command is stopped, not left to finish)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LogChunk:
    """A piece of a command's output, as its runner shipped it during one run (one lease)."""

    lease_id: str
    runner_id: str
    at: float
    text: str


class CommandStore(Protocol):
    """Command job logs and stop orders."""

    def append_command_log(self, runner_id: str, request_id: str, text: str, *,
                           now: float) -> None:
        """Keep ``text``, the next piece of the output of the command ``request_id`` that
        ``runner_id`` runs. Only while the runner holds the request under an open lease;
        else raises LeaseLost and keeps nothing."""
        ...

    def command_log(self, job_id: str) -> list[LogChunk]:
        """Every piece of the job's logs, in the order they were kept."""
        ...

    def cancelled_leased_requests(self, runner_id: str) -> list[str]:
        """The requests the runner holds under open leases whose job was cancelled."""
        ...
