"""Waste findings from the same records the costs come from: each with the figure behind it,
what it cost, and what to change."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from stoker.core.accounting import (
    CostReport,
    PoolTime,
    RunnerClass,
    UsageRecords,
    clip,
    knee_batch_size,
    throughput_by_batch_size,
)
from stoker.core.model import RunnerState

Figure = Mapping[str, float | int | str | None]


@dataclass(frozen=True, slots=True)
class PoolFacts:
    """A model's pool as configured: its runner class, batch limit and size."""

    model: str
    runner_class: RunnerClass
    max_batch_size: int
    runners: int


@dataclass(frozen=True, slots=True)
class ModelFootprint:
    """What a model needs in accelerator memory: weights, and KV cache per token."""

    model: str
    weights_gb: float
    kv_gb_per_token: float


@dataclass(frozen=True, slots=True)
class WasteThresholds:
    """When a figure becomes a finding."""

    idle_share: float = 0.3
    cold_start_share: float = 0.2
    fill_fraction: float = 0.75
    min_gap_s: float = 60.0
    memory_headroom: float = 1.2


@dataclass(frozen=True, slots=True)
class Finding:
    """One way money was wasted, the figure behind it, and what to change."""

    kind: str
    model: str
    summary: str
    advice: str
    waste_usd: float
    figure: Figure


def _share(pool: PoolTime, state: RunnerState) -> tuple[float, float, float]:
    seconds = pool.seconds_by_state.get(state.value, 0.0)
    total = pool.total_s
    return seconds, (seconds / total if total else 0.0), pool.cost_by_state_usd.get(
        state.value, 0.0)


def idle_and_cold_findings(pool: PoolTime, th: WasteThresholds) -> list[Finding]:
    """The pool's idle share and cold-start share, when past their thresholds."""
    found = []
    idle_s, idle_share, idle_usd = _share(pool, RunnerState.IDLE)
    if idle_share > th.idle_share:
        found.append(Finding(
            "idle_pool", pool.model,
            f"{pool.model}: runners sat idle {idle_share:.0%} of their time",
            "shrink the pool or its keep-warm time, or lend idle runners to deferrable tiers",
            idle_usd, {"idle_s": round(idle_s, 1), "idle_share": round(idle_share, 3)}))
    cold_s, cold_share, cold_usd = _share(pool, RunnerState.STARTING)
    if cold_share > th.cold_start_share:
        found.append(Finding(
            "cold_starts", pool.model,
            f"{pool.model}: {cold_share:.0%} of runner time went to starting (provisioning and "
            "model load)",
            "keep runners warm longer between jobs instead of starting them per job",
            cold_usd, {"starting_s": round(cold_s, 1), "starting_share": round(cold_share, 3)}))
    return found


def batch_fill_finding(records: UsageRecords, pool: PoolFacts, report: CostReport,
                       th: WasteThresholds) -> Finding | None:
    """Batches fuller than observed would raise throughput (measured tokens/s per size)."""
    batches = [b for b in records.batches if b.model == pool.model and b.requests]
    if not batches:
        return None
    average = sum(b.size for b in batches) / len(batches)
    curve = throughput_by_batch_size(batches)
    knee = knee_batch_size(curve) or pool.max_batch_size
    target = min(pool.max_batch_size, max(knee, 1))
    if average >= th.fill_fraction * target:
        return None
    at_average = max((rate for size, rate in curve.items() if size <= average),
                     default=min(curve.values(), default=0.0))
    best = max(curve.values(), default=0.0)
    direct = sum(j.direct_cost_usd for j in report.jobs if j.model == pool.model)
    waste = direct * (1 - at_average / best) if best > 0 else 0.0
    return Finding(
        "batch_fill", pool.model,
        f"{pool.model}: batches average {average:.1f} requests; max_batch_size is "
        f"{pool.max_batch_size} and measured throughput levels off at {knee}",
        "raise max_wait_ms so batches fill, or submit work together instead of one by one",
        max(0.0, waste),
        {"average_batch_size": round(average, 2), "max_batch_size": pool.max_batch_size,
         "knee_batch_size": knee, "tokens_per_s_at_average": round(at_average, 1),
         "tokens_per_s_best": round(best, 1)})


def memory_needed_gb(records: UsageRecords, footprint: ModelFootprint, th: WasteThresholds
                     ) -> float:
    """Weights plus KV cache for the largest batch seen at its longest sequence, with headroom."""
    batches = [b for b in records.batches if b.model == footprint.model]
    peak = max((b.size for b in batches), default=1)
    longest = max((r.prompt_tokens + r.completion_tokens for b in batches for r in b.requests),
                  default=0)
    return (footprint.weights_gb + footprint.kv_gb_per_token * peak * longest) \
        * th.memory_headroom


def accelerator_finding(records: UsageRecords, pool: PoolFacts, time: PoolTime,
                        footprint: ModelFootprint | None, catalog: Sequence[RunnerClass],
                        th: WasteThresholds) -> Finding | None:
    """A cheaper accelerator class whose memory fits the model at its observed batch size."""
    current = pool.runner_class
    if footprint is None or current.accelerator.upper() == "CPU":
        return None
    need = memory_needed_gb(records, footprint, th)
    fitting = [c for c in catalog if c.accelerator.upper() != "CPU" and c.memory_gb >= need]
    if not fitting:
        return None
    cheapest = min(fitting, key=lambda c: c.price_per_hour_usd)
    if cheapest.price_per_hour_usd >= current.price_per_hour_usd:
        return None
    saving = time.total_s * (current.price_per_s_usd - cheapest.price_per_s_usd)
    return Finding(
        "accelerator_class", pool.model,
        f"{pool.model} runs on {current.accelerator} ({current.memory_gb:g} GB, "
        f"${current.price_per_hour_usd:.3f}/h) but needs {need:.3g} GB: "
        f"{cheapest.accelerator} ({cheapest.memory_gb:g} GB) fits at "
        f"${cheapest.price_per_hour_usd:.3f}/h",
        f"move the pool to runner class {cheapest.name!r}", saving,
        {"memory_needed_gb": round(need, 2), "current_class": current.name,
         "suggested_class": cheapest.name})


def gap_finding(records: UsageRecords, pool: PoolFacts, report: CostReport,
                th: WasteThresholds) -> Finding | None:
    """Long idle stretches between jobs, when no work reached the pool."""
    runners = {r.runner_id for r in records.runners if r.model == pool.model}
    gaps = [clip(s.started_at, s.ended_at, report.since, report.until) for s in records.spans
            if s.runner_id in runners and s.state == RunnerState.IDLE]
    long_gaps = [g for g in gaps if g >= th.min_gap_s]
    if not long_gaps:
        return None
    return Finding(
        "gaps_between_jobs", pool.model,
        f"{pool.model}: {len(long_gaps)} idle stretches of {th.min_gap_s:g}s or more, the "
        f"longest {max(long_gaps):.0f}s",
        "schedule deferrable tiers (batch, best_effort) into these gaps, or scale to zero",
        sum(long_gaps) * pool.runner_class.price_per_s_usd,
        {"gaps": len(long_gaps), "gap_s": round(sum(long_gaps), 1),
         "longest_gap_s": round(max(long_gaps), 1)})


def peak_busy_runners(records: UsageRecords, model: str) -> int:
    """The most runners of ``model`` busy at the same moment."""
    runners = {r.runner_id for r in records.runners if r.model == model}
    edges: list[tuple[float, int]] = []
    for s in records.spans:
        if s.runner_id in runners and s.state == RunnerState.BUSY:
            edges.append((s.started_at, 1))
            edges.append((s.ended_at if s.ended_at is not None else float("inf"), -1))
    peak = level = 0
    for _, step in sorted(edges):
        level += step
        peak = max(peak, level)
    return peak


def pool_size_finding(records: UsageRecords, pool: PoolFacts, time: PoolTime) -> Finding | None:
    """A pool whose runners were never all busy at once is larger than its load."""
    if pool.runners <= 1 or time.total_s <= 0:
        return None
    peak = peak_busy_runners(records, pool.model)
    if peak >= pool.runners:
        return None
    spare = pool.runners - max(peak, 0)
    return Finding(
        "pool_never_full", pool.model,
        f"{pool.model}: at most {peak} of {pool.runners} runners were ever busy at once",
        f"lower the pool to {max(peak, 1)} runner(s) or let it scale down when idle",
        time.total_usd * spare / pool.runners,
        {"peak_busy_runners": peak, "pool_size": pool.runners})


def find_waste(records: UsageRecords, report: CostReport, pools: Sequence[PoolFacts],
               footprints: Mapping[str, ModelFootprint], catalog: Sequence[RunnerClass],
               th: WasteThresholds = WasteThresholds()) -> tuple[Finding, ...]:
    """Every finding over the report's window, the most expensive first."""
    times = {p.model: p for p in report.pools}
    found: list[Finding] = []
    for pool in pools:
        time = times.get(pool.model)
        if time is None or time.total_s <= 0:
            continue
        found += idle_and_cold_findings(time, th)
        for finding in (batch_fill_finding(records, pool, report, th),
                        accelerator_finding(records, pool, time, footprints.get(pool.model),
                                            catalog, th),
                        gap_finding(records, pool, report, th),
                        pool_size_finding(records, pool, time)):
            if finding is not None:
                found.append(finding)
    return tuple(sorted(found, key=lambda f: f.waste_usd, reverse=True))


def utilization(report: CostReport) -> dict[str, float]:
    """Per model, the busy share of its runners' recorded time."""
    return {pool.model: (pool.seconds_by_state.get(RunnerState.BUSY.value, 0.0) / pool.total_s
                         if pool.total_s else 0.0) for pool in report.pools}
