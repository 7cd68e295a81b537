"""Prometheus text at ``/metrics``: what this replica saw on its hot paths (batches, tokens,
refused submissions), and what the store says at scrape time (queue depth, runner states,
event counters, cost per team and tier)."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from stoker.accounting.view import cost_report
from stoker.clock import Clock
from stoker.core.lending import lending_pool
from stoker.settings import Settings
from stoker.store import Store
from stoker.store.sql import COUNTERS

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Cost is recomputed from every record at most this often (scrapes in between reuse it).
COST_REFRESH_S = 30.0


class StoreCollector(Collector):
    """Reads the store when Prometheus scrapes."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._cost: dict[tuple[str, str], float] = {}
        self._cost_at = float("-inf")

    def collect(self) -> Iterator[Metric]:
        """The store's view, as metric families."""
        depth = GaugeMetricFamily("stoker_queue_depth", "Requests queued",
                                  labels=["model", "tier"])
        for (model, tier), n in sorted(self._store.queue_depth().items()):
            depth.add_metric([model, tier], n)
        yield depth
        states = GaugeMetricFamily("stoker_runner_state", "Runners in each state",
                                   labels=["model", "state"])
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for runner in self._store.list_runners():
            counts[(runner.model, runner.state.value)] += 1
        for (model, state), n in sorted(counts.items()):
            states.add_metric([model, state], n)
        yield states
        for name in COUNTERS:
            family = CounterMetricFamily(f"stoker_{name}", f"Events: {name.replace('_', ' ')}")
            family.add_metric([], self._store.counter(name))
            yield family
        yield from self._pool()
        cost = CounterMetricFamily("stoker_job_cost_usd", "Direct cost of recorded work",
                                   labels=["team", "tier"])
        for (team, tier), usd in sorted(self._direct_cost().items()):
            cost.add_metric([team, tier], usd)
        yield cost

    def _pool(self) -> Iterator[Metric]:
        """The autoscaler's wish per model pool, and its decisions by reason (from the store,
        so every replica reports the acting controller's)."""
        desired = GaugeMetricFamily("stoker_pool_desired_runners",
                                    "Runners the autoscaler wants for the model's pool",
                                    labels=["model"])
        for name, spec in sorted(self._settings.models.items()):
            if spec.autoscale is None:
                continue
            latest = self._store.pool_decisions(model=name, limit=1)
            if latest:
                desired.add_metric([name], latest[0].desired)
        yield desired
        yield from self._lending()
        decisions = CounterMetricFamily("stoker_pool_decisions",
                                        "Autoscaler decisions recorded, by reason",
                                        labels=["model", "reason"])
        for (model, reason), n in sorted(self._store.pool_decision_counts().items()):
            decisions.add_metric([model, reason], n)
        yield decisions

    def _lending(self) -> Iterator[Metric]:
        """Per external fleet, from its controller's latest decision: the replicas the
        service needs and those lent (a router may drain lent replicas by this)."""
        needed = GaugeMetricFamily("stoker_lending_needed_replicas",
                                   "Replicas the online fleet needs now, with headroom",
                                   labels=["fleet"])
        lent = GaugeMetricFamily("stoker_lending_lent_replica",
                                 "1 for each replica lent to Stoker's work", labels=["fleet",
                                                                                     "replica"])
        for name in sorted(self._settings.lending):
            latest = self._store.pool_decisions(model=lending_pool(name), limit=1)
            if not latest:
                continue
            needed.add_metric([name], latest[0].desired)
            for replica in latest[0].signals.get("lent", []):
                lent.add_metric([name, str(replica)], 1.0)
        yield needed
        yield lent

    def _direct_cost(self) -> dict[tuple[str, str], float]:
        now = self._clock.now()
        with self._lock:
            if now - self._cost_at >= COST_REFRESH_S:
                _, report = cost_report(self._store, self._settings, since=0.0, until=now)
                sums: dict[tuple[str, str], float] = defaultdict(float)
                for job in report.jobs:
                    sums[(job.team, job.tier)] += job.direct_cost_usd
                self._cost, self._cost_at = dict(sums), now
            return self._cost


class StokerMetrics:
    """One registry per app (no process-wide globals), observed by the routes."""

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.registry = CollectorRegistry()
        self.batch_size = Histogram("stoker_batch_size", "Requests per batch pass",
                                    ["model"], buckets=BATCH_SIZE_BUCKETS,
                                    registry=self.registry)
        self.batch_seconds = Histogram("stoker_batch_duration_seconds",
                                       "Runner time per batch pass", ["model"],
                                       registry=self.registry)
        self.tokens = Counter("stoker_tokens", "Tokens processed", ["model", "kind"],
                              registry=self.registry)
        self.rejected = Counter("stoker_rejected_submissions",
                                "Submissions refused with 429 (quota or circuit breaker)",
                                ["team"], registry=self.registry)
        self.registry.register(StoreCollector(store, settings, clock))

    def observe_batch(self, model: str, size: int, seconds: float, prompt_tokens: int,
                      completion_tokens: int) -> None:
        """Record one completed batch pass."""
        self.batch_size.labels(model).observe(size)
        self.batch_seconds.labels(model).observe(max(0.0, seconds))
        self.tokens.labels(model, "prompt").inc(prompt_tokens)
        self.tokens.labels(model, "completion").inc(completion_tokens)
