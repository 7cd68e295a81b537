"""A synthetic CI trace: pull-request evals through the working day, nightly regressions, and
the occasional burst.

- Pull requests arrive as a Poisson process whose rate follows the hour of day (most between
  08:00 and 18:00 UTC) and the weekday (weekends a fraction of a weekday); each runs a smoke
  suite of at most ten prompts (tier ``smoke``).
- Each team runs a nightly regression of at most 500 prompts (tier ``regression``) at 02:00.
- A burst (``bursts``: day and hour) is many smoke jobs in a few minutes, like the seed's
  4,000 jobs in 10 minutes when a shared base image changes.

Time 0 is a Monday 00:00 UTC. The same seed gives the same trace.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from stoker.sim.trace import TraceJob

HOUR_S = 3600.0
DAY_S = 86_400.0
#: Share of a weekday's pull requests opened in each UTC hour (sums to 1).
_HOURLY = (1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 10, 9, 7, 9, 10, 10, 9, 7, 5, 3, 2, 2, 1, 1)
HOUR_WEIGHTS = tuple(w / sum(_HOURLY) for w in _HOURLY)


@dataclass(frozen=True, slots=True)
class Burst:
    """``jobs`` smoke jobs spread evenly over ``minutes`` from ``day`` at ``hour``."""

    day: int
    hour: float
    jobs: int = 4000
    minutes: float = 10.0


@dataclass(frozen=True, slots=True)
class CIShape:
    """What the synthetic week looks like."""

    days: int = 7
    pull_requests_per_weekday: float = 200.0
    weekend_fraction: float = 0.15
    teams: tuple[str, ...] = ("search", "ads", "assistant")
    model: str = "default"
    smoke_prompts: tuple[int, int] = (5, 10)
    nightly_prompts: tuple[int, int] = (200, 500)
    prompt_tokens: tuple[int, int] = (200, 800)
    completion_tokens: tuple[int, int] = (100, 300)
    nightly_hour: float = 2.0
    bursts: tuple[Burst, ...] = ()


def synth_ci_trace(shape: CIShape, *, seed: int) -> list[TraceJob]:
    """A CI-like trace of ``shape.days`` days, in arrival order."""
    rng = random.Random(seed)
    jobs: list[TraceJob] = []
    for day in range(shape.days):
        weekday = day % 7 < 5
        per_day = shape.pull_requests_per_weekday * (1.0 if weekday else shape.weekend_fraction)
        for hour, weight in enumerate(HOUR_WEIGHTS):
            start = day * DAY_S + hour * HOUR_S
            at = start + rng.expovariate(per_day * weight / HOUR_S) if per_day else start + HOUR_S
            while at < start + HOUR_S:
                jobs.append(_job(rng, shape, at, "smoke", shape.smoke_prompts))
                at += rng.expovariate(per_day * weight / HOUR_S)
        for n, team in enumerate(shape.teams):
            at = day * DAY_S + shape.nightly_hour * HOUR_S + n * 60.0
            jobs.append(_job(rng, shape, at, "regression", shape.nightly_prompts, team=team))
    for burst in shape.bursts:
        start = burst.day * DAY_S + burst.hour * HOUR_S
        gap = burst.minutes * 60.0 / max(burst.jobs, 1)
        jobs += [_job(rng, shape, start + i * gap, "smoke", shape.smoke_prompts)
                 for i in range(burst.jobs)]
    return sorted(jobs, key=lambda j: j.arrival_s)


def _job(rng: random.Random, shape: CIShape, at: float, tier: str, prompts: tuple[int, int],
         *, team: str | None = None) -> TraceJob:
    n = rng.randint(*prompts)
    return TraceJob(at, team or rng.choice(shape.teams), tier, shape.model,
                    _draw(rng, shape.prompt_tokens, n), _draw(rng, shape.completion_tokens, n))


def _draw(rng: random.Random, bounds: tuple[int, int], n: int) -> tuple[int, ...]:
    return tuple(rng.randint(*bounds) for _ in range(n))


def parse_burst(text: str) -> Burst:
    """``DAY:HOUR[:JOBS[:MINUTES]]``, e.g. ``2:14:4000:10``."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 4:
        raise ValueError(f"a burst is DAY:HOUR[:JOBS[:MINUTES]], got {text!r}")
    try:
        day, hour = int(parts[0]), float(parts[1])
        jobs = int(parts[2]) if len(parts) > 2 else 4000
        minutes = float(parts[3]) if len(parts) > 3 else 10.0
    except ValueError:
        raise ValueError(f"a burst is DAY:HOUR[:JOBS[:MINUTES]] of numbers, got {text!r}"
                         ) from None
    if day < 0 or not 0 <= hour < 24 or jobs < 1 or minutes <= 0:
        raise ValueError(f"burst {text!r}: need DAY ≥ 0, 0 ≤ HOUR < 24, JOBS ≥ 1, MINUTES > 0")
    return Burst(day, hour, jobs, minutes)


def span_s(shape: CIShape) -> float:
    """How long the trace's week (or days) lasts."""
    return shape.days * DAY_S


def hours_of(jobs: Sequence[TraceJob]) -> list[int]:
    """Jobs per UTC hour of day (for checking a trace's shape)."""
    counts = [0] * 24
    for j in jobs:
        counts[int(j.arrival_s % DAY_S // HOUR_S)] += 1
    return counts
