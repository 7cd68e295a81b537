"""The synthetic CI trace has the shape it promises."""

from __future__ import annotations

import pytest

from stoker.sim.synth import DAY_S, Burst, CIShape, hours_of, parse_burst, synth_ci_trace


def test_the_same_seed_gives_the_same_trace_and_another_seed_another() -> None:
    shape = CIShape(days=2)
    assert synth_ci_trace(shape, seed=1) == synth_ci_trace(shape, seed=1)
    assert synth_ci_trace(shape, seed=1) != synth_ci_trace(shape, seed=2)


def test_pull_requests_follow_the_working_day_and_weekends_are_quieter() -> None:
    jobs = synth_ci_trace(CIShape(days=14, pull_requests_per_weekday=400), seed=3)
    smoke = [j for j in jobs if j.tier == "smoke"]
    hours = hours_of(smoke)
    assert sum(hours[9:17]) > 3 * sum(hours[0:8])
    weekday = sum(1 for j in smoke if (j.arrival_s // DAY_S) % 7 < 5) / 10
    weekend = sum(1 for j in smoke if (j.arrival_s // DAY_S) % 7 >= 5) / 4
    assert weekend < 0.3 * weekday
    assert 0.8 * 400 < weekday < 1.2 * 400


def test_smoke_suites_are_small_nightly_regressions_large_and_one_per_team_a_night() -> None:
    shape = CIShape(days=3)
    jobs = synth_ci_trace(shape, seed=4)
    assert all(j.requests <= 10 for j in jobs if j.tier == "smoke")
    nightly = [j for j in jobs if j.tier == "regression"]
    assert len(nightly) == 3 * len(shape.teams)
    assert all(200 <= j.requests <= 500 for j in nightly)
    assert all(int(j.arrival_s % DAY_S // 3600) == 2 for j in nightly)


def test_a_burst_adds_its_jobs_within_its_minutes() -> None:
    quiet = synth_ci_trace(CIShape(days=1, pull_requests_per_weekday=0), seed=5)
    burst = synth_ci_trace(CIShape(days=1, pull_requests_per_weekday=0,
                                   bursts=(Burst(0, 14.0, 4000, 10.0),)), seed=5)
    added = [j for j in burst if j.tier == "smoke"]
    assert len(burst) - len(quiet) == len(added) == 4000
    assert min(j.arrival_s for j in added) >= 14 * 3600
    assert max(j.arrival_s for j in added) < 14 * 3600 + 600


@pytest.mark.parametrize("text", ["1", "a:2", "1:25", "1:2:0", "1:2:3:4:5"])
def test_a_bad_burst_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="burst"):
        parse_burst(text)
