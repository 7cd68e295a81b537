"""Where runners come from: one small Protocol, an implementation per platform.

A provisioner starts runner processes (or pods) for one model and stops them; the runners
then register with the API themselves, so the store, not the provisioner, knows their state.
The controller (stoker.pool.controller) decides how many; a provisioner only does it.
"""

from __future__ import annotations

from typing import Protocol

from stoker.core.model import Runner


class Provisioner(Protocol):
    """Starts and stops one model's runners."""

    model: str

    def start(self, count: int) -> list[str]:
        """Start ``count`` runners; the names they will register under."""
        ...

    def stop(self, runner: Runner) -> bool:
        """Ask a runner to drain and exit (it finishes its batch first). False if this
        provisioner did not start it, or it is gone already."""
        ...

    def list(self) -> list[str]:
        """The names of the runners it started that are still running (or starting)."""
        ...

    def exit_reason(self, name: str) -> str | None:
        """Why a runner it started is no longer listed (its exit status and the last line
        of its log, or its pod's reason), once :meth:`list` has seen it gone; else None."""
        ...
