"""Dispatch windows: a tier may run only during some hours of the day (e.g. nightly).

The rule, DST included: a window opens each day when the local clock reaches ``start`` and
stays open for the length of its span on the wall clock (``end - start``, across midnight
when ``end`` is earlier), counted in real seconds. So a window is open equally long every day:

- when the clocks jump forward over ``start``, the start is read on the clock from before the
  jump: on a spring-forward night in New York, 02:00 opens at the jump (02:00 EST is 03:00
  EDT) and 02:30 half an hour after it; either way the window then runs its whole span;
- when the clocks fall back and ``start`` happens twice, it opens at the first time.

A window whose start equals its end would be open never (or always): the config refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class DispatchWindow:
    """Daily hours ``[start, end)`` in ``timezone``; ``end`` before ``start`` wraps midnight."""

    start: time
    end: time
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError(f"a window from {self.start:%H:%M} to {self.end:%H:%M} is empty; "
                             "leave the window out to dispatch at any hour")

    @property
    def span_s(self) -> float:
        """How long the window stays open each day, in seconds."""
        return float((_seconds(self.end) - _seconds(self.start)) % _DAY_S)

    def opens_at(self, day: date) -> float:
        """The epoch time the window opens on local date ``day``."""
        # fold=0: a start that happens twice (clocks back) is its first time; a start the
        # clock skips (clocks forward) is read with the offset before the jump, which is the
        # instant of the jump or just after it.
        local = datetime.combine(day, self.start, ZoneInfo(self.timezone)).replace(fold=0)
        return local.timestamp()

    def contains(self, now: float) -> bool:
        """Whether the epoch time ``now`` falls inside the window."""
        today = datetime.fromtimestamp(now, ZoneInfo(self.timezone)).date()
        for day in (today - timedelta(days=1), today):
            opened = self.opens_at(day)
            if opened <= now < opened + self.span_s:
                return True
        return False


    def opens_in_s(self, now: float) -> float | None:
        """Seconds until the window next opens; None while it is open."""
        if self.contains(now):
            return None
        today = datetime.fromtimestamp(now, ZoneInfo(self.timezone)).date()
        return min(at - now for at in (self.opens_at(today + timedelta(days=d)) for d in (0, 1, 2))
                   if at > now)


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second
