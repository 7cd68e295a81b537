"""Dispatch windows: daily hours in a time zone, the same length every day, DST included."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.windows import DispatchWindow

NEW_YORK = "America/New_York"


def epoch(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()


def minutes_open(window: DispatchWindow, since: float, until: float) -> int:
    return sum(window.contains(t) for t in range(int(since), int(until), 60))


def test_a_window_across_the_spring_forward_jump_is_open_its_whole_span() -> None:
    # 2026-03-08: New York's clocks jump from 02:00 EST to 03:00 EDT (07:00 UTC).
    window = DispatchWindow(time(2, 0), time(3, 0), NEW_YORK)
    day = (epoch(2026, 3, 8, 4), epoch(2026, 3, 9, 4))
    assert minutes_open(window, *day) == 60
    assert window.contains(epoch(2026, 3, 8, 7, 0))  # the jump itself: 03:00 EDT
    assert not window.contains(epoch(2026, 3, 8, 8, 0))  # 04:00 EDT, an hour later


def test_a_window_on_the_fall_back_night_opens_once_for_its_span() -> None:
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:00-02:00 happens twice.
    window = DispatchWindow(time(1, 0), time(2, 0), NEW_YORK)
    day = (epoch(2026, 11, 1, 3), epoch(2026, 11, 2, 3))
    assert minutes_open(window, *day) == 60
    assert window.contains(epoch(2026, 11, 1, 5, 30))  # 01:30 EDT, the first time
    assert not window.contains(epoch(2026, 11, 1, 6, 30))  # 01:30 EST, the second time


def test_a_nightly_window_wraps_midnight() -> None:
    window = DispatchWindow(time(20, 0), time(8, 0), "UTC")
    assert window.contains(epoch(2026, 6, 1, 23))
    assert window.contains(epoch(2026, 6, 2, 7, 59))
    assert not window.contains(epoch(2026, 6, 2, 8))
    assert not window.contains(epoch(2026, 6, 2, 12))


def test_an_empty_window_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        DispatchWindow(time(2, 0), time(2, 0), NEW_YORK)


@given(start=st.times(), end=st.times(), day=st.integers(0, 730),
       zone=st.sampled_from(["UTC", NEW_YORK, "Europe/London", "Australia/Lord_Howe"]))
def test_every_day_a_window_is_open_for_its_span(start: time, end: time, day: int,
                                                 zone: str) -> None:
    start, end = start.replace(second=0, microsecond=0), end.replace(second=0, microsecond=0)
    if start == end:
        return
    window = DispatchWindow(start, end, zone)
    opened = window.opens_at(date.fromordinal(date(2026, 1, 1).toordinal() + day))
    assert window.contains(opened)
    assert window.contains(opened + window.span_s - 1)
    if window.span_s < 86_400 - 3600:  # else the next day's opening may come first (DST)
        assert not window.contains(opened + window.span_s)
