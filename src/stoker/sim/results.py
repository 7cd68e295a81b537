"""What a simulation says: GPU-hours and cost by runner state, utilization, and queue wait and
completion time per tier, beside the same trace on one cold GPU per job.

The pool's cost is priced by the live cost split (:func:`stoker.core.accounting
.attribute_costs`) from the records the simulation made, so a simulated and a real run are
priced by one piece of code.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from stoker.core.accounting import CostConfig, RunnerClass, UsageRecords, attribute_costs
from stoker.core.model import RunnerState
from stoker.sim.batch_time import BatchTimeModel
from stoker.sim.engine import RequestTiming, SimOutcome
from stoker.sim.trace import TraceJob

STATES = (RunnerState.STARTING, RunnerState.IDLE, RunnerState.BUSY, RunnerState.DRAINING)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """p50, p95 and p99 of some seconds (None: nothing measured)."""

    p50_s: float | None
    p95_s: float | None
    p99_s: float | None


@dataclass(frozen=True, slots=True)
class TierTimes:
    """One tier's requests: how long they queued, and how long their jobs took in all."""

    tier: str
    jobs: int
    requests: int
    queue_wait: Percentiles
    completion: Percentiles


@dataclass(frozen=True, slots=True)
class Summary:
    """A run of the trace (simulated pool, or the per-job baseline) in figures."""

    label: str
    window_s: float
    gpu_hours_by_state: Mapping[str, float]
    cost_by_state_usd: Mapping[str, float]
    tiers: tuple[TierTimes, ...]
    refused_jobs: int = 0
    unfinished_requests: int = 0

    @property
    def gpu_hours(self) -> float:
        """All runner-hours billed."""
        return sum(self.gpu_hours_by_state.values())

    @property
    def cost_usd(self) -> float:
        """What they cost."""
        return sum(self.cost_by_state_usd.values())

    @property
    def utilization(self) -> float:
        """Busy hours over all billed hours."""
        total = self.gpu_hours
        return self.gpu_hours_by_state.get("busy", 0.0) / total if total else 0.0

    def tier(self, name: str) -> TierTimes | None:
        """One tier's times, if it had work."""
        return next((t for t in self.tiers if t.tier == name), None)

    def as_json(self) -> dict[str, Any]:
        """Plain data, for ``--json`` and files."""
        return {"label": self.label, "window_s": self.window_s,
                "gpu_hours": self.gpu_hours, "cost_usd": self.cost_usd,
                "utilization": self.utilization,
                "gpu_hours_by_state": dict(self.gpu_hours_by_state),
                "cost_by_state_usd": dict(self.cost_by_state_usd),
                "tiers": [asdict(t) for t in self.tiers],
                "refused_jobs": self.refused_jobs,
                "unfinished_requests": self.unfinished_requests}


def percentiles(values: Sequence[float]) -> Percentiles:
    """Nearest-rank percentiles (what a person checking by hand gets)."""
    if not values:
        return Percentiles(None, None, None)
    ordered = sorted(values)

    def rank(q: float) -> float:
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    return Percentiles(rank(0.50), rank(0.95), rank(0.99))


def summarize(outcome: SimOutcome, label: str = "stoker",
              cost: CostConfig | None = None) -> Summary:
    """The simulated pool's figures, priced by the live cost split."""
    report = attribute_costs(outcome.records, cost or CostConfig(), since=outcome.since,
                             until=outcome.until)
    hours: dict[str, float] = {s.value: 0.0 for s in STATES}
    usd: dict[str, float] = {s.value: 0.0 for s in STATES}
    for pool in report.pools:
        for state, seconds in pool.seconds_by_state.items():
            hours[str(state)] = hours.get(str(state), 0.0) + seconds / 3600.0
        for state, value in pool.cost_by_state_usd.items():
            usd[str(state)] = usd.get(str(state), 0.0) + value
    waits: dict[str, list[float]] = defaultdict(list)
    for t in outcome.requests:
        waits[t.tier].append(t.started_at - t.arrived_at)
    completions: dict[str, list[float]] = defaultdict(list)
    for job in outcome.records.jobs:
        if job.finished_at is not None:
            completions[job.tier].append(job.finished_at - job.created_at)
    jobs: dict[str, int] = defaultdict(int)
    for job in outcome.records.jobs:
        jobs[job.tier] += 1
    tiers = tuple(TierTimes(tier, jobs[tier], len(waits[tier]), percentiles(waits[tier]),
                            percentiles(completions[tier])) for tier in sorted(jobs))
    return Summary(label, outcome.until - outcome.since, hours, usd, tiers,
                   sum(outcome.refused.values()), outcome.unfinished)


def recorded_outcome(records: UsageRecords, *, since: float, until: float) -> SimOutcome:
    """A real run's records read as a simulation's outcome, so that :func:`summarize` gives
    the same figures for both: each recorded request waited from its job's arrival to its
    batch's start."""
    jobs = {j.job_id: j for j in records.jobs}
    timings = tuple(RequestTiming(r.job_id, jobs[r.job_id].tier, jobs[r.job_id].created_at,
                                  b.started_at, b.ended_at)
                    for b in records.batches for r in b.requests if r.job_id in jobs)
    recorded = len(timings)
    return SimOutcome(since, until, records, timings, {},
                      max(0, sum(j.requests for j in jobs.values()) - recorded))


@dataclass(frozen=True, slots=True)
class ColdMachine:
    """One cold GPU per job: it boots and loads the model, runs the job's requests one at a
    time, and is billed in whole ``billing_granularity_s`` (at least ``min_billed_s``)."""

    cold_start_s: float
    runner_class: RunnerClass
    batch_time: BatchTimeModel
    billing_granularity_s: float = 60.0
    min_billed_s: float = 60.0


def per_job_baseline(trace: Sequence[TraceJob], machines: Mapping[str, ColdMachine]
                     ) -> Summary:
    """The trace as most teams run it today: each job on its own cold GPU, at once."""
    hours = {"starting": 0.0, "idle": 0.0, "busy": 0.0, "draining": 0.0}
    usd = dict.fromkeys(hours, 0.0)
    waits: dict[str, list[float]] = defaultdict(list)
    completions: dict[str, list[float]] = defaultdict(list)
    jobs: dict[str, int] = defaultdict(int)
    for job in trace:
        m = machines[job.model]
        elapsed = m.cold_start_s
        for p, c in zip(job.prompt_tokens, job.completion_tokens, strict=True):
            waits[job.tier].append(elapsed)
            elapsed += m.batch_time.batch_s([p], [c])
        completions[job.tier].append(elapsed)
        jobs[job.tier] += 1
        billed = max(m.min_billed_s,
                     math.ceil(elapsed / m.billing_granularity_s) * m.billing_granularity_s)
        price = m.runner_class.price_per_s_usd
        work = elapsed - m.cold_start_s
        # Billed time past the job's end is paid for and unused: idle.
        for state, seconds in (("starting", m.cold_start_s), ("busy", work),
                               ("idle", billed - elapsed)):
            hours[state] += seconds / 3600.0
            usd[state] += seconds * price
    tiers = tuple(TierTimes(tier, jobs[tier], len(waits[tier]), percentiles(waits[tier]),
                            percentiles(completions[tier])) for tier in sorted(jobs))
    window = (trace[-1].arrival_s - trace[0].arrival_s) if trace else 0.0
    return Summary("one cold GPU per job", window, hours, usd, tiers)


def saving(ours: Summary, theirs: Summary) -> float:
    """The fraction of ``theirs``' cost that ``ours`` saves (negative: it costs more)."""
    return 1.0 - ours.cost_usd / theirs.cost_usd if theirs.cost_usd else 0.0
