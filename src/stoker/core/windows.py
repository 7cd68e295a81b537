"""Dispatch windows: a tier may run only during some hours of the day (e.g. nightly)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class DispatchWindow:
    """Daily hours ``[start, end)`` in ``timezone``; ``end`` before ``start`` wraps midnight."""

    start: time
    end: time
    timezone: str = "UTC"

    def contains(self, now: float) -> bool:
        """Whether the epoch time ``now`` falls inside the window."""
        local = datetime.fromtimestamp(now, ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end
