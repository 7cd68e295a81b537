"""The pool and its queue under a job trace, as a SimPy discrete-event simulation.

Each job of the trace arrives at its time and passes admission (:func:`stoker.core.admission
.admit`, with the teams' quotas); its requests queue per (tier, team). Each runner is a
process: it goes through its cold start (``starting``), then asks the batch former
(:func:`stoker.core.batching.plan_batch`, the tier order and fair share of the live service)
for a batch whenever it is idle and work arrives or a wait ends, and is ``busy`` for the time
the batch takes (:class:`~stoker.sim.batch_time.BatchTimeModel`). An autoscaled pool's
controller asks :func:`stoker.core.autoscale.decide` every ``interval_s`` with what the pool
measured of itself, as the live controller does, and starts or stops runners.

What comes out is what the store would have recorded (runner state spans, batches and their
results, jobs: :class:`stoker.core.accounting.UsageRecords`), so the live cost split prices it.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import simpy

from stoker.core.accounting import (
    BatchUse,
    JobFacts,
    RequestUse,
    RunnerClass,
    RunnerFacts,
    StateSpan,
    UsageRecords,
)
from stoker.core.admission import (
    AdmissionState,
    BreakerConfig,
    Refuse,
    TeamLoad,
    TeamQuota,
    admit,
    initial_state,
)
from stoker.core.autoscale import (
    AutoscaleConfig,
    AutoscaleState,
    PoolSnapshot,
    decide,
    tier_demand,
)
from stoker.core.batching import BatchConfig, Dispatch, SchedulingPolicy, plan_batch
from stoker.core.fair_share import FairShareState
from stoker.core.model import QueueGroup, RunnerState, Tier
from stoker.sim.batch_time import BatchTimeModel
from stoker.sim.trace import TraceJob

#: How many recent batches and starts the controller measures the pool from (as the store).
MEASURED_BATCHES = 200
MEASURED_STARTS = 20


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """One model's pool: how it batches, what it runs on and how it is sized.

    ``autoscale`` None: a fixed pool of ``runners``, warm from the start. Otherwise the
    autoscaler sizes it, from ``autoscale.min_runners`` warm at the start.
    """

    batch: BatchConfig
    runner_class: RunnerClass
    batch_time: BatchTimeModel
    cold_start_s: float
    runners: int = 1
    autoscale: AutoscaleConfig | None = None
    interval_s: float = 2.0
    assumed_completion_tokens: float = 128.0


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything a simulation runs on: the live service's policies and each model's pool."""

    policy: SchedulingPolicy
    pools: Mapping[str, PoolConfig]
    quotas: Mapping[str, TeamQuota] = field(default_factory=dict)
    breaker: BreakerConfig | None = None
    #: How long an idle runner's lease call is held before it asks again (a window opening
    #: is noticed at the next ask, as live).
    long_poll_s: float = 10.0


@dataclass(frozen=True, slots=True)
class RequestTiming:
    """When one simulated request arrived, started running and ended."""

    job_id: str
    tier: str
    arrived_at: float
    started_at: float
    ended_at: float


@dataclass(frozen=True, slots=True)
class SimOutcome:
    """What the simulation recorded, over ``[since, until)``."""

    since: float
    until: float
    records: UsageRecords
    requests: tuple[RequestTiming, ...]
    #: Jobs admission refused, by the quota that refused them.
    refused: Mapping[str, int]
    #: Requests still queued or running at ``until`` (a pool too small for the trace).
    unfinished: int


@dataclass(slots=True)
class _Request:
    job_id: str
    tier: str
    team: str
    arrived_at: float
    prompt_tokens: int
    completion_tokens: int


#: The pause between idle runners looking at new work, most recently busy first.
RANK_STEP_S = 1e-6


@dataclass(slots=True)
class _Runner:
    id: str
    state: RunnerState
    since: float
    wake: simpy.Event
    draining: bool = False


class _Run:
    """The simulation's state: queues, runners and what has been recorded so far."""

    def __init__(self, env: simpy.Environment, config: SimConfig) -> None:
        self.env = env
        self.config = config
        self.queues: dict[str, dict[tuple[str, str], deque[_Request]]] = {
            m: {} for m in config.pools}
        self.news: dict[str, simpy.Event] = {m: env.event() for m in config.pools}
        self.shares: dict[str, FairShareState] = {m: FairShareState() for m in config.pools}
        self.runners: dict[str, dict[str, _Runner]] = {m: {} for m in config.pools}
        self.facts: list[RunnerFacts] = []
        self.spans: list[StateSpan] = []
        self.batches: dict[str, list[BatchUse]] = {m: [] for m in config.pools}
        self.starts: dict[str, list[float]] = {m: [] for m in config.pools}
        # The last MEASURED_BATCHES batches' (tokens, seconds, requests), and their sums.
        self.recent: dict[str, deque[tuple[int, float, int]]] = {m: deque() for m in config.pools}
        self.recent_sums: dict[str, tuple[int, float, int]] = dict.fromkeys(config.pools,
                                                                            (0, 0.0, 0))
        self.jobs: dict[str, JobFacts] = {}
        self.open_requests: dict[str, int] = {}
        self.timings: list[RequestTiming] = []
        self.refused: dict[str, int] = {}
        self.admission: dict[str, AdmissionState] = {}
        self.generated_today: dict[tuple[str, int], int] = {}

    # -- the queue -------------------------------------------------------------------------

    def groups(self, model: str) -> list[QueueGroup]:
        return [QueueGroup(tier, team, len(q), q[0].arrived_at)
                for (tier, team), q in self.queues[model].items() if q]

    def queued(self, model: str) -> int:
        return sum(len(q) for q in self.queues[model].values())

    def announce(self, model: str) -> None:
        event, self.news[model] = self.news[model], self.env.event()
        event.succeed()

    def arrive(self, index: int, job: TraceJob) -> None:
        job_id = f"job{index}"
        now = self.env.now
        if not self._admitted(job, now):
            return
        queue = self.queues[job.model].setdefault((job.tier, job.team), deque())
        for p, c in zip(job.prompt_tokens, job.completion_tokens, strict=True):
            queue.append(_Request(job_id, job.tier, job.team, now, p, c))
        self.jobs[job_id] = JobFacts(job_id, job.team, job.tier, job.model, now, None,
                                     job.requests)
        self.open_requests[job_id] = job.requests
        self.announce(job.model)

    def _admitted(self, job: TraceJob, now: float) -> bool:
        quota = self.config.quotas.get(job.team)
        if quota is None and self.config.breaker is None:
            return True
        quota = quota or TeamQuota()
        state = self.admission.get(job.team) or initial_state(quota, now=now)
        load = TeamLoad(
            queued=sum(len(q) for queues in self.queues.values()
                       for (_, team), q in queues.items() if team == job.team),
            tokens_today=self.generated_today.get((job.team, int(now // 86_400)), 0))
        decision, self.admission[job.team] = admit(job.requests, load, state, quota,
                                                   self.config.breaker, team=job.team, now=now)
        if isinstance(decision, Refuse):
            self.refused[decision.quota] = self.refused.get(decision.quota, 0) + 1
            return False
        return True

    def take(self, model: str, dispatch: Dispatch) -> list[_Request]:
        taken: list[_Request] = []
        for pick in dispatch.picks:
            queue = self.queues[model][(pick.tier, pick.team)]
            taken += [queue.popleft() for _ in range(min(pick.count, len(queue)))]
        return taken

    # -- runners ---------------------------------------------------------------------------

    def set_state(self, runner: _Runner, state: RunnerState) -> None:
        now = self.env.now
        self.spans.append(StateSpan(runner.id, runner.state, runner.since, now))
        runner.state, runner.since = state, now

    def start_runner(self, model: str, *, warm: bool) -> None:
        pool = self.config.pools[model]
        runner_id = f"{model}-runner{len(self.facts)}"
        state = RunnerState.IDLE if warm else RunnerState.STARTING
        runner = _Runner(runner_id, state, self.env.now, self.env.event())
        self.runners[model][runner_id] = runner
        self.facts.append(RunnerFacts(runner_id, model, pool.runner_class))
        self.env.process(self._runner(model, runner))

    def _runner(self, model: str, runner: _Runner) -> Generator[simpy.Event, Any, None]:
        pool = self.config.pools[model]
        if runner.state == RunnerState.STARTING:
            yield self.env.timeout(pool.cold_start_s)
            self.starts[model].append(pool.cold_start_s)
            self.set_state(runner, RunnerState.IDLE)
        while not runner.draining:
            decision, share = plan_batch(self.groups(model), self.shares[model], pool.batch,
                                         self.config.policy, now=self.env.now)
            if isinstance(decision, Dispatch):
                self.shares[model] = share
                yield from self._run_batch(model, runner, self.take(model, decision))
                continue
            until = self.env.now + self.config.long_poll_s
            if decision.until is not None:
                until = min(until, decision.until)
            news = self.news[model]
            yield self.env.any_of([news, runner.wake,
                                   self.env.timeout(max(until - self.env.now, 0.0))])
            if news.triggered:
                # Work arrived for every idle runner at once: the one busy most recently
                # looks first and takes it, as the live dispatcher hands it out (so a surplus
                # runner stays idle and its keep-warm runs out). A microsecond per place.
                yield self.env.timeout(self._idle_rank(model, runner) * RANK_STEP_S)
        self.set_state(runner, RunnerState.STOPPED)
        del self.runners[model][runner.id]

    def _idle_rank(self, model: str, runner: _Runner) -> int:
        """How many idle runners of ``model`` were busy more recently than ``runner``."""
        return sum(1 for other in self.runners[model].values()
                   if other.state == RunnerState.IDLE and not other.draining
                   and other.since > runner.since)

    def _run_batch(self, model: str, runner: _Runner, batch: Sequence[_Request]
                   ) -> Generator[simpy.Event, Any, None]:
        pool = self.config.pools[model]
        self.set_state(runner, RunnerState.BUSY)
        # The lease's round trip: the requests have left the queue, the runner has not yet
        # started on them (after a batch it also reports the last one first).
        if pool.batch_time.between_batches_s:
            yield self.env.timeout(pool.batch_time.between_batches_s)
        started = self.env.now
        yield self.env.timeout(pool.batch_time.batch_s([r.prompt_tokens for r in batch],
                                                       [r.completion_tokens for r in batch]))
        ended = self.env.now
        self.batches[model].append(BatchUse(
            f"batch{sum(len(b) for b in self.batches.values())}", runner.id, model, started,
            ended, len(batch), tuple(RequestUse(f"{r.job_id}/{i}", r.job_id, r.prompt_tokens,
                                                r.completion_tokens)
                                     for i, r in enumerate(batch))))
        self._measure(model, sum(r.completion_tokens for r in batch), ended - started,
                      len(batch))
        for r in batch:
            self.timings.append(RequestTiming(r.job_id, r.tier, r.arrived_at, started, ended))
            day = (r.team, int(ended // 86_400))
            self.generated_today[day] = self.generated_today.get(day, 0) + r.completion_tokens
            self.open_requests[r.job_id] -= 1
            if self.open_requests[r.job_id] == 0:
                facts = self.jobs[r.job_id]
                self.jobs[r.job_id] = JobFacts(facts.job_id, facts.team, facts.tier,
                                               facts.model, facts.created_at, ended,
                                               facts.requests)
        self.set_state(runner, RunnerState.IDLE)

    def _measure(self, model: str, tokens: int, seconds: float, requests: int) -> None:
        recent, (t, s, n) = self.recent[model], self.recent_sums[model]
        recent.append((tokens, seconds, requests))
        t, s, n = t + tokens, s + seconds, n + requests
        if len(recent) > MEASURED_BATCHES:
            old_t, old_s, old_n = recent.popleft()
            t, s, n = t - old_t, s - old_s, n - old_n
        self.recent_sums[model] = (t, s, n)

    def stop_runner(self, model: str, runner_id: str) -> None:
        runner = self.runners[model].get(runner_id)
        if runner is not None and not runner.draining:
            runner.draining = True
            if not runner.wake.triggered:
                runner.wake.succeed()

    # -- the autoscaler --------------------------------------------------------------------

    def snapshot(self, model: str, tiers: Mapping[str, Tier]) -> PoolSnapshot:
        pool = self.config.pools[model]
        tokens, busy_s, requests = self.recent_sums[model]
        per_request = tokens / requests if requests else pool.assumed_completion_tokens
        queued: dict[str, int] = {}
        for (name, _), q in self.queues[model].items():
            queued[name] = queued.get(name, 0) + len(q)
        demand = tier_demand(queued, tiers, per_request, now=self.env.now)
        runners = self.runners[model].values()
        warm = {r.id: (r.since if r.state == RunnerState.IDLE else None)
                for r in runners if r.state in (RunnerState.IDLE, RunnerState.BUSY)
                and not r.draining}
        starting = sum(1 for r in runners if r.state == RunnerState.STARTING)
        starts = self.starts[model][-MEASURED_STARTS:]
        return PoolSnapshot(demand, warm, starting,
                            tokens / busy_s if tokens and busy_s else None,
                            statistics.median(starts) if starts else None)

    def controller(self, model: str) -> Generator[simpy.Event, Any, None]:
        pool = self.config.pools[model]
        assert pool.autoscale is not None
        state = AutoscaleState()
        while True:
            decision, state = decide(self.snapshot(model, self.config.policy.tiers), state,
                                     pool.autoscale, now=self.env.now)
            for _ in range(decision.start):
                self.start_runner(model, warm=False)
            for runner_id in decision.stop:
                self.stop_runner(model, runner_id)
            yield self.env.timeout(pool.interval_s)

    # -- the end ---------------------------------------------------------------------------

    def outcome(self, since: float, until: float) -> SimOutcome:
        spans = list(self.spans)
        for runners in self.runners.values():
            spans += [StateSpan(r.id, r.state, r.since, None) for r in runners.values()]
        batches = tuple(b for bs in self.batches.values() for b in bs)
        unfinished = sum(self.open_requests.values())
        return SimOutcome(since, until, UsageRecords(tuple(self.facts), tuple(spans), batches,
                                                     tuple(self.jobs.values())),
                          tuple(self.timings), dict(self.refused), unfinished)


def simulate(trace: Sequence[TraceJob], config: SimConfig, *, since: float | None = None,
             until: float | None = None) -> SimOutcome:
    """Run ``trace`` through the pools of ``config``; the outcome covers ``[since, until)``
    (default: from the first arrival until the last request is done). Requests still open at
    ``until`` run on to their end, so their waits count; runner time past ``until`` does not.

    Jobs of a model with no pool in ``config`` are refused with ``ValueError``."""
    missing = sorted({j.model for j in trace} - set(config.pools))
    if missing:
        raise ValueError(f"the trace has jobs for models with no pool configured: "
                         f"{', '.join(missing)}")
    start = since if since is not None else (trace[0].arrival_s if trace else 0.0)
    env = simpy.Environment(initial_time=start)
    run = _Run(env, config)
    for model, pool in config.pools.items():
        warm = pool.runners if pool.autoscale is None else pool.autoscale.min_runners
        for _ in range(warm):
            run.start_runner(model, warm=True)
        if pool.autoscale is not None:
            env.process(run.controller(model))
    arrivals = env.process(_arrivals(env, run, [j for j in trace
                                                if until is None or j.arrival_s < until]))
    env.run(until=arrivals if until is None else until)
    # Work still open runs on to its end: its waits count, while the cost is the window's.
    while sum(run.open_requests.values()) and env.peek() != simpy.core.Infinity:
        env.step()
    return run.outcome(start, env.now if until is None else until)


def _arrivals(env: simpy.Environment, run: _Run, trace: Sequence[TraceJob]
              ) -> Generator[simpy.Event, Any, None]:
    for index, job in enumerate(trace):
        if job.arrival_s > env.now:
            yield env.timeout(job.arrival_s - env.now)
        run.arrive(index, job)
