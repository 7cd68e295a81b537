"""Sweeps: parsed, applied to a config, and read for the frontier and the cheapest setting."""

from __future__ import annotations

import pytest

from stoker.planning.sweep import (
    Point,
    Sweep,
    apply,
    cheapest_meeting,
    combinations,
    frontier,
    parse_sweep,
)
from stoker.sim.results import Percentiles, Summary, TierTimes


def test_a_range_and_a_list_parse_and_combine() -> None:
    runners = parse_sweep("pool.max_runners=2..4")
    wait = parse_sweep("batching.max_wait_ms=200,500")
    assert runners == Sweep("pool.max_runners", (2, 3, 4))
    assert wait == Sweep("batching.max_wait_ms", (200, 500))
    assert len(combinations([runners, wait])) == 6
    assert combinations([]) == [{}]


@pytest.mark.parametrize("text", ["pool.max_runners", "=1,2", "x=5..2", "x=a..b"])
def test_a_bad_sweep_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="sweep"):
        parse_sweep(text)


def test_pool_and_batching_keys_reach_every_model_they_concern() -> None:
    raw = {"models": {"a": {"autoscale": {"max_runners": 2}, "batching": {"max_wait_ms": 1}},
                      "b": {"runners": 1}}}
    done = apply(raw, {"pool.max_runners": 6, "batching.max_wait_ms": 500,
                       "models.b.runners": 3})
    assert done["models"]["a"]["autoscale"]["max_runners"] == 6
    assert done["models"]["a"]["batching"]["max_wait_ms"] == 500
    assert done["batching"]["max_wait_ms"] == 500
    assert done["models"]["b"]["runners"] == 3
    assert raw["models"]["a"]["autoscale"]["max_runners"] == 2  # the original is untouched
    with pytest.raises(ValueError, match="autoscaled"):
        apply({"models": {"b": {}}}, {"pool.max_runners": 2})


def _point(name: str, cost: float, smoke_p95: float) -> Point:
    times = TierTimes("smoke", 1, 1, Percentiles(smoke_p95, smoke_p95, smoke_p95),
                      Percentiles(None, None, None))
    return Point({"name": name}, Summary(name, 1.0, {"busy": 1.0}, {"busy": cost}, (times,)))


def test_the_frontier_drops_settings_beaten_on_cost_and_wait_and_the_cheapest_is_marked(
        ) -> None:
    cheap_slow, dear_fast, worse = _point("a", 1.0, 30.0), _point("b", 3.0, 5.0), \
        _point("c", 4.0, 10.0)
    points = [worse, dear_fast, cheap_slow]
    assert frontier(points, ["smoke"]) == [cheap_slow, dear_fast]
    assert cheapest_meeting(points, {"smoke": 12.0}) == {"smoke": dear_fast}
    assert cheapest_meeting(points, {"smoke": 1.0}) == {"smoke": None}
