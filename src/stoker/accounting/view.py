"""Costs and waste for a time window: the store's records through the pure accounting and
waste functions, with the runner classes, pools and footprints the settings describe."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from stoker.accounting.footprint import declared_footprint, footprint, read_checkpoint
from stoker.accounting.prices import DEFAULT_RUNNER_CLASSES
from stoker.core.accounting import (
    CostConfig,
    CostReport,
    JobCost,
    RunnerClass,
    UsageRecords,
    attribute_costs,
)
from stoker.core.waste import Finding, ModelFootprint, PoolFacts, find_waste, utilization
from stoker.settings import Settings
from stoker.store import Store


def runner_classes(settings: Settings) -> dict[str, RunnerClass]:
    """The shipped classes, with the config's added or replacing them by name."""
    classes = {c.name: c for c in DEFAULT_RUNNER_CLASSES}
    for name, spec in settings.runner_classes.items():
        classes[name] = RunnerClass(name, spec.accelerator, spec.memory_gb,
                                    spec.price_per_hour_usd)
    return classes


def model_classes(settings: Settings) -> dict[str, RunnerClass]:
    """Each model's runner class."""
    classes = runner_classes(settings)
    return {name: classes[spec.runner_class] for name, spec in settings.models.items()}


def pool_facts(settings: Settings) -> list[PoolFacts]:
    """Each model's pool as configured."""
    classes = model_classes(settings)
    return [PoolFacts(name, classes[name], settings.batching_for(name).max_batch_size,
                      settings.runners_for(name)) for name in settings.models]


def footprints(settings: Settings) -> dict[str, ModelFootprint]:
    """Measured from local safetensors checkpoints, else as declared."""
    found = {}
    for name, spec in settings.models.items():
        facts = None if spec.is_remote else read_checkpoint(settings.model_path(name))
        if facts is not None:
            found[name] = footprint(name, facts)
        elif spec.params is not None:
            found[name] = declared_footprint(name, spec.params, spec.dtype or "bf16")
    return found


@dataclass(frozen=True, slots=True)
class CostView:
    """A window's records, cost report, waste findings and utilization."""

    records: UsageRecords
    report: CostReport
    findings: tuple[Finding, ...]
    utilization: dict[str, float]


def cost_config(settings: Settings) -> CostConfig:
    """How the configured cost split shares a batch's time (live reports and the simulator)."""
    acc = settings.accounting
    return CostConfig(acc.prompt_weight, acc.completion_weight, acc.min_billed_s)


def cost_report(store: Store, settings: Settings, *, since: float,
                until: float) -> tuple[UsageRecords, CostReport]:
    """The window's records and their attribution (no waste findings)."""
    records = store.usage_records(since=since, until=until, classes=model_classes(settings),
                                  default_class=runner_classes(settings)["cpu"])
    return records, attribute_costs(records, cost_config(settings), since=since, until=until)


def cost_view(store: Store, settings: Settings, *, since: float, until: float) -> CostView:
    """Attribute the window's recorded runner time and find its waste."""
    records, report = cost_report(store, settings, since=since, until=until)
    findings = find_waste(records, report, pool_facts(settings), footprints(settings),
                          list(runner_classes(settings).values()))
    return CostView(records, report, findings, utilization(report))


def job_json(job: JobCost) -> dict[str, Any]:
    """One job's cost."""
    return {"job_id": job.job_id, "team": job.team, "tier": job.tier, "model": job.model,
            "day": job.day, "requests": job.requests, "prompt_tokens": job.prompt_tokens,
            "completion_tokens": job.completion_tokens,
            "direct_gpu_s": round(job.direct_gpu_s, 6),
            "direct_cost_usd": round(job.direct_cost_usd, 9),
            "loaded_gpu_s": round(job.loaded_gpu_s, 6),
            "loaded_cost_usd": round(job.loaded_cost_usd, 9),
            "queue_wait_s": _round(job.queue_wait_s), "run_time_s": _round(job.run_time_s),
            "counterfactual_cost_usd": _round(job.counterfactual_cost_usd, 9),
            "saving_usd": _round(job.saving_usd, 9)}


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def totals_by(jobs: Iterable[JobCost], key: Callable[[JobCost], str]) -> dict[str, Any]:
    """Jobs, requests, tokens and costs summed per ``key`` (team, tier, model or day)."""
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for job in jobs:
        row = sums[key(job)]
        row["jobs"] += 1
        row["requests"] += job.requests
        row["tokens"] += job.prompt_tokens + job.completion_tokens
        row["direct_cost_usd"] += job.direct_cost_usd
        row["loaded_cost_usd"] += job.loaded_cost_usd
        row["counterfactual_cost_usd"] += job.counterfactual_cost_usd or 0.0
    return {k: {name: round(v, 9) for name, v in row.items()} for k, row in sorted(sums.items())}


def finding_json(finding: Finding) -> dict[str, Any]:
    """One waste finding."""
    return {"kind": finding.kind, "model": finding.model, "summary": finding.summary,
            "advice": finding.advice, "waste_usd": round(finding.waste_usd, 9),
            "figure": dict(finding.figure)}


def report_json(view: CostView, *, team: str | None = None, tier: str | None = None,
                model: str | None = None) -> dict[str, Any]:
    """The report as JSON, its job rows and sums filtered by team, tier and model."""
    r = view.report
    jobs = [j for j in r.jobs if (team is None or j.team == team)
            and (tier is None or j.tier == tier) and (model is None or j.model == model)]
    return {
        "since": r.since, "until": r.until,
        "totals": {"gpu_s": round(r.total_gpu_s, 6), "cost_usd": round(r.total_usd, 9),
                   "attributed_gpu_s": round(r.attributed_gpu_s, 6),
                   "attributed_cost_usd": round(r.attributed_usd, 9),
                   "unattributed_gpu_s": round(r.unattributed_gpu_s, 6),
                   "unattributed_cost_usd": round(r.unattributed_usd, 9)},
        "pools": [{"model": p.model, "seconds_by_state": dict(p.seconds_by_state),
                   "cost_by_state_usd": dict(p.cost_by_state_usd),
                   "utilization": round(view.utilization.get(p.model, 0.0), 4)}
                  for p in r.pools if model is None or p.model == model],
        "jobs": [job_json(j) for j in jobs],
        "by_team": totals_by(jobs, lambda j: j.team),
        "by_tier": totals_by(jobs, lambda j: j.tier),
        "by_model": totals_by(jobs, lambda j: j.model),
        "by_day": totals_by(jobs, lambda j: j.day),
    }
