"""Cost attribution from records, not estimates: runner state intervals and batch records in,
cost per job (direct and loaded), per team, tier, model and day out.

- A runner's time in the window is split by state (starting, idle, busy, draining, lent); each
  second costs its runner class's price.
- A batch's time is its *direct* cost, shared among its recorded results by tokens
  (``prompt_weight * prompt + completion_weight * completion``; equal shares when all weigh 0).
  A runner's direct time is capped at its busy + draining time, so nothing is counted twice.
- A model pool's starting and idle time is its *overhead*, shared among the jobs that ran on that
  pool in the window in proportion to their direct cost: a job's *loaded* cost is its direct
  cost plus that share.
- What no job can carry (busy time between batches, overhead of a pool no job used) is
  *unattributed*; attributed plus unattributed is exactly the runners' recorded time.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from stoker.core.model import RunnerState

OVERHEAD_STATES = frozenset({RunnerState.STARTING, RunnerState.IDLE})


@dataclass(frozen=True, slots=True)
class RunnerClass:
    """A kind of machine a runner runs on, and what an hour of it costs."""

    name: str
    accelerator: str
    memory_gb: float
    price_per_hour_usd: float

    @property
    def price_per_s_usd(self) -> float:
        """The price of one second."""
        return self.price_per_hour_usd / 3600.0


@dataclass(frozen=True, slots=True)
class RunnerFacts:
    """A runner: the model it serves and its class."""

    runner_id: str
    model: str
    runner_class: RunnerClass


@dataclass(frozen=True, slots=True)
class StateSpan:
    """A runner in one state from ``started_at`` to ``ended_at`` (None: still in it)."""

    runner_id: str
    state: RunnerState
    started_at: float
    ended_at: float | None


@dataclass(frozen=True, slots=True)
class RequestUse:
    """One recorded result of a batch: whose it was and the tokens it took."""

    request_id: str
    job_id: str
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class BatchUse:
    """A batch pass and the results it recorded."""

    batch_id: str
    runner_id: str
    model: str
    started_at: float
    ended_at: float
    size: int
    requests: tuple[RequestUse, ...]


@dataclass(frozen=True, slots=True)
class JobFacts:
    """A job's identity and timing."""

    job_id: str
    team: str
    tier: str
    model: str
    created_at: float
    finished_at: float | None
    requests: int


@dataclass(frozen=True, slots=True)
class UsageRecords:
    """Everything the accounting reads, as the store recorded it."""

    runners: tuple[RunnerFacts, ...]
    spans: tuple[StateSpan, ...]
    batches: tuple[BatchUse, ...]
    jobs: tuple[JobFacts, ...]


@dataclass(frozen=True, slots=True)
class CostConfig:
    """How a batch's time is shared among its requests, and how a cold machine bills."""

    prompt_weight: float = 1.0
    completion_weight: float = 1.0
    #: The least a machine started for one job is billed (clouds bill a minimum, e.g. 60 s).
    min_billed_s: float = 60.0


@dataclass(frozen=True, slots=True)
class PoolTime:
    """A model pool's runner-seconds per state in the window, and their cost."""

    model: str
    seconds_by_state: Mapping[str, float]
    cost_by_state_usd: Mapping[str, float]

    @property
    def total_s(self) -> float:
        """All recorded runner-seconds of the pool."""
        return sum(self.seconds_by_state.values())

    @property
    def total_usd(self) -> float:
        """What the pool cost."""
        return sum(self.cost_by_state_usd.values())


@dataclass(frozen=True, slots=True)
class JobCost:
    """What one job cost, and what the same work would have cost one prompt at a time on a
    cold machine of the same class."""

    job_id: str
    team: str
    tier: str
    model: str
    day: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    direct_gpu_s: float
    direct_cost_usd: float
    loaded_gpu_s: float
    loaded_cost_usd: float
    queue_wait_s: float | None
    run_time_s: float | None
    counterfactual_cost_usd: float | None

    @property
    def saving_usd(self) -> float | None:
        """Counterfactual minus loaded cost."""
        if self.counterfactual_cost_usd is None:
            return None
        return self.counterfactual_cost_usd - self.loaded_cost_usd


@dataclass(frozen=True, slots=True)
class CostReport:
    """Every job's cost, each pool's time, and the totals that must add up."""

    since: float
    until: float
    jobs: tuple[JobCost, ...]
    pools: tuple[PoolTime, ...]
    total_gpu_s: float
    attributed_gpu_s: float
    total_usd: float
    attributed_usd: float

    @property
    def unattributed_gpu_s(self) -> float:
        """Recorded runner time no job carries."""
        return self.total_gpu_s - self.attributed_gpu_s

    @property
    def unattributed_usd(self) -> float:
        """The cost of that time."""
        return self.total_usd - self.attributed_usd


def utc_day(ts: float) -> str:
    """The UTC calendar day of a timestamp."""
    return datetime.fromtimestamp(ts, UTC).date().isoformat()


def clip(start: float, end: float | None, since: float, until: float) -> float:
    """Seconds of ``[start, end)`` inside ``[since, until)``; an open end runs to ``until``."""
    stop = until if end is None else min(end, until)
    return max(0.0, stop - max(start, since))


def request_shares(batch: BatchUse, config: CostConfig) -> dict[str, float]:
    """Each recorded request's fraction of the batch (they sum to 1 when there are any)."""
    weights = {r.request_id: config.prompt_weight * r.prompt_tokens
               + config.completion_weight * r.completion_tokens for r in batch.requests}
    total = sum(weights.values())
    if total <= 0:
        return {rid: 1.0 / len(weights) for rid in weights} if weights else {}
    return {rid: w / total for rid, w in weights.items()}


def _runner_seconds(records: UsageRecords, since: float, until: float
                    ) -> dict[str, dict[RunnerState, float]]:
    seconds: dict[str, dict[RunnerState, float]] = defaultdict(lambda: defaultdict(float))
    for span in records.spans:
        if span.state != RunnerState.STOPPED:
            seconds[span.runner_id][span.state] += clip(span.started_at, span.ended_at, since,
                                                        until)
    return seconds


def _direct_scale(records: UsageRecords, seconds: Mapping[str, Mapping[RunnerState, float]],
                  since: float, until: float) -> dict[str, float]:
    """Per runner, the factor that keeps its batch time within its busy + draining time."""
    batch_s: dict[str, float] = defaultdict(float)
    for b in records.batches:
        if b.requests:
            batch_s[b.runner_id] += clip(b.started_at, b.ended_at, since, until)
    scale = {}
    for runner_id, used in batch_s.items():
        working = seconds.get(runner_id, {})
        room = working.get(RunnerState.BUSY, 0.0) + working.get(RunnerState.DRAINING, 0.0)
        scale[runner_id] = min(1.0, room / used) if used > 0 else 0.0
    return scale


@dataclass
class _Tally:
    """What the batches say about one job, gathered in one pass."""

    direct_s: float = 0.0
    direct_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_start: float = float("inf")
    last_end: float = float("-inf")


def _tally_batches(records: UsageRecords, config: CostConfig, scale: Mapping[str, float],
                   since: float, until: float) -> dict[str, _Tally]:
    runners = {r.runner_id: r for r in records.runners}
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for b in records.batches:
        runner = runners.get(b.runner_id)
        duration = clip(b.started_at, b.ended_at, since, until) * scale.get(b.runner_id, 0.0)
        shares = request_shares(b, config)
        for r in b.requests:
            t = tallies[r.job_id]
            t.prompt_tokens += r.prompt_tokens
            t.completion_tokens += r.completion_tokens
            t.first_start = min(t.first_start, b.started_at)
            t.last_end = max(t.last_end, b.ended_at)
            if runner is not None:
                part_s = duration * shares[r.request_id]
                t.direct_s += part_s
                t.direct_usd += part_s * runner.runner_class.price_per_s_usd
    return tallies


def attribute_costs(records: UsageRecords, config: CostConfig, *, since: float,
                    until: float) -> CostReport:
    """Split every recorded runner-second in ``[since, until)`` among jobs (see the module)."""
    seconds = _runner_seconds(records, since, until)
    tallies = _tally_batches(records, config, _direct_scale(records, seconds, since, until),
                             since, until)
    pools = _pool_times(records, seconds)
    overhead = _overhead_shares(records, pools, {j: t.direct_usd for j, t in tallies.items()})
    rates = single_stream_rates(records.batches)
    cold = cold_start_by_model(records)
    classes = {r.model: r.runner_class for r in records.runners}
    jobs = []
    for job in records.jobs:
        tally = tallies.get(job.job_id)
        if tally is None and job.created_at >= until:
            continue
        t = tally or _Tally()
        extra_s, extra_usd = overhead.get(job.job_id, (0.0, 0.0))
        counterfactual = None
        runner_class, rate = classes.get(job.model), rates.get(job.model)
        if runner_class is not None and rate and tally is not None:
            billed = max(config.min_billed_s,
                         cold.get(job.model, 0.0) + t.completion_tokens / rate)
            counterfactual = billed * runner_class.price_per_s_usd
        ran = tally is not None
        jobs.append(JobCost(
            job_id=job.job_id, team=job.team, tier=job.tier, model=job.model,
            day=utc_day(job.created_at), requests=job.requests, prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens, direct_gpu_s=t.direct_s,
            direct_cost_usd=t.direct_usd, loaded_gpu_s=t.direct_s + extra_s,
            loaded_cost_usd=t.direct_usd + extra_usd,
            queue_wait_s=t.first_start - job.created_at if ran else None,
            run_time_s=t.last_end - t.first_start if ran else None,
            counterfactual_cost_usd=counterfactual))
    return CostReport(
        since, until, tuple(jobs), tuple(pools.values()),
        total_gpu_s=sum(sum(by_state.values()) for by_state in seconds.values()),
        attributed_gpu_s=sum(t.direct_s for t in tallies.values())
        + sum(s for s, _ in overhead.values()),
        total_usd=sum(p.total_usd for p in pools.values()),
        attributed_usd=sum(t.direct_usd for t in tallies.values())
        + sum(u for _, u in overhead.values()))


def _pool_times(records: UsageRecords, seconds: Mapping[str, Mapping[RunnerState, float]]
                ) -> dict[str, PoolTime]:
    by_model_s: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_model_usd: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for runner in records.runners:
        for state, s in seconds.get(runner.runner_id, {}).items():
            by_model_s[runner.model][state.value] += s
            by_model_usd[runner.model][state.value] += s * runner.runner_class.price_per_s_usd
    return {m: PoolTime(m, dict(by_model_s[m]), dict(by_model_usd[m])) for m in by_model_s}


def _overhead_shares(records: UsageRecords, pools: Mapping[str, PoolTime],
                     direct_usd: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    """Each job's share of its pool's starting and idle time: (seconds, USD)."""
    job_model = {j.job_id: j.model for j in records.jobs}
    by_model: dict[str, dict[str, float]] = defaultdict(dict)
    for job_id, usd in direct_usd.items():
        model = job_model.get(job_id)
        if model is not None and usd > 0:
            by_model[model][job_id] = usd
    shares: dict[str, tuple[float, float]] = {}
    for model, jobs in by_model.items():
        pool = pools.get(model)
        if pool is None:
            continue
        over_s = sum(pool.seconds_by_state.get(s.value, 0.0) for s in OVERHEAD_STATES)
        over_usd = sum(pool.cost_by_state_usd.get(s.value, 0.0) for s in OVERHEAD_STATES)
        total = sum(jobs.values())
        for job_id, usd in jobs.items():
            shares[job_id] = (over_s * usd / total, over_usd * usd / total)
    return shares


def throughput_by_batch_size(batches: Iterable[BatchUse]) -> dict[int, float]:
    """Median generated tokens per second of the batches of each size (the throughput curve)."""
    rates: dict[int, list[float]] = defaultdict(list)
    for b in batches:
        duration = b.ended_at - b.started_at
        generated = sum(r.completion_tokens for r in b.requests)
        if duration > 0 and generated > 0:
            rates[b.size].append(generated / duration)
    return {size: statistics.median(v) for size, v in sorted(rates.items())}


def single_stream_rates(batches: Sequence[BatchUse]) -> dict[str, float]:
    """Per model, tokens/s one sequence gets when it runs alone: measured on batches of one if
    any ran, else one sequence's share of the smallest batches (a lower bound on its speed)."""
    by_model: dict[str, list[BatchUse]] = defaultdict(list)
    for b in batches:
        by_model[b.model].append(b)
    rates = {}
    for model, found in by_model.items():
        curve = throughput_by_batch_size(found)
        if curve:
            smallest = min(curve)
            rates[model] = curve[smallest] / smallest
    return rates


def cold_start_by_model(records: UsageRecords) -> dict[str, float]:
    """Per model, the median time its runners spent ``starting`` (provisioning + load)."""
    model_of = {r.runner_id: r.model for r in records.runners}
    found: dict[str, list[float]] = defaultdict(list)
    for span in records.spans:
        if span.state == RunnerState.STARTING and span.ended_at is not None:
            model = model_of.get(span.runner_id)
            if model is not None:
                found[model].append(span.ended_at - span.started_at)
    return {m: statistics.median(v) for m, v in found.items()}


def knee_batch_size(curve: Mapping[int, float], fraction: float = 0.9) -> int | None:
    """The smallest batch size that reaches ``fraction`` of the best measured throughput."""
    if not curve:
        return None
    best = max(curve.values())
    return min(size for size, rate in curve.items() if rate >= fraction * best)
