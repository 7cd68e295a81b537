"""The simulator's inputs from a Stoker config: the same tiers, teams, batching, pools and
prices `stoker serve` would use, plus each model's batch time and cold start (measured on a
real run and kept in a calibration file, or given)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from stoker.accounting.view import model_classes
from stoker.api.scheduling import build_policy, build_tiers
from stoker.core.accounting import UsageRecords, cold_start_by_model
from stoker.core.admission import BreakerConfig, TeamQuota
from stoker.core.batching import BatchConfig
from stoker.settings import Settings
from stoker.sim.batch_time import BatchTimeModel, fit_batch_time, research_curve
from stoker.sim.engine import PoolConfig, SimConfig
from stoker.sim.results import ColdMachine


@dataclass(frozen=True, slots=True)
class Calibration:
    """One model's measured batch time and cold start."""

    batch_time: BatchTimeModel
    cold_start_s: float | None


def calibrate(records: UsageRecords) -> dict[str, Calibration]:
    """Each model's batch time fitted from its recorded batches, and its median cold start."""
    cold = cold_start_by_model(records)
    found: dict[str, Calibration] = {}
    for model in sorted({b.model for b in records.batches}):
        try:
            fitted = fit_batch_time([b for b in records.batches if b.model == model])
        except ValueError:
            continue
        found[model] = Calibration(fitted, cold.get(model))
    return found


def write_calibration(calibration: Mapping[str, Calibration], path: Path) -> None:
    """Keep a calibration as JSON."""
    path.write_text(json.dumps({"models": {m: {"batch_time": asdict(c.batch_time),
                                               "cold_start_s": c.cold_start_s}
                                           for m, c in calibration.items()}}, indent=2) + "\n")


def read_calibration(path: Path) -> dict[str, Calibration]:
    """A calibration written by `stoker trace export --calibration`; ValueError if unreadable."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {m: Calibration(BatchTimeModel(**c["batch_time"]), c.get("cold_start_s"))
                for m, c in raw["models"].items()}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a calibration file ({exc})") from None


@dataclass(frozen=True, slots=True)
class Given:
    """What the command line says of batch time and cold start (None: from elsewhere)."""

    batch_time: BatchTimeModel | None = None
    cold_start_s: float | None = None


def parse_batch_time(text: str) -> BatchTimeModel:
    """``research`` (an 8B model on an H100-class GPU: 16 rows ≈ 14 x one row's tokens/s),
    or ``STEP_S[,STEP_S_PER_ROW[,PREFILL_S_PER_TOKEN[,BETWEEN_BATCHES_S]]]``."""
    if text == "research":
        return research_curve()
    try:
        parts = [float(p) for p in text.split(",")]
        if not 1 <= len(parts) <= 4:
            raise ValueError
        return BatchTimeModel(*parts)
    except (ValueError, TypeError):
        raise ValueError(f"--batch-time takes 'research' or STEP_S[,STEP_S_PER_ROW"
                         f"[,PREFILL_S_PER_TOKEN[,BETWEEN_BATCHES_S]]] (seconds), got {text!r}"
                         ) from None


def _model_terms(settings: Settings, model: str, calibration: Mapping[str, Calibration],
                 given: Given) -> tuple[BatchTimeModel, float]:
    spec = settings.models[model]
    measured = calibration.get(model)
    batch_time = given.batch_time or (measured.batch_time if measured else None)
    if batch_time is None:
        raise ValueError(f"no batch time for model {model!r}: give --batch-time, or a "
                         "--calibration file from `stoker trace export`")
    cold = given.cold_start_s
    if cold is None and measured is not None:
        cold = measured.cold_start_s
    if cold is None:
        cold = spec.autoscale.assumed_cold_start_s if spec.autoscale else 60.0
    return batch_time, cold


def sim_config(settings: Settings, models: set[str], calibration: Mapping[str, Calibration],
               given: Given) -> SimConfig:
    """The simulation of ``models``' pools under ``settings``."""
    unknown = sorted(models - set(settings.models))
    if unknown:
        raise ValueError(f"the trace names models the config does not serve: "
                         f"{', '.join(unknown)} (configured: {', '.join(sorted(settings.models))})")
    tiers = build_tiers(settings)
    policy = build_policy(settings, tiers, {n: t.weight for n, t in settings.teams.items()})
    classes = model_classes(settings)
    pools = {}
    for model in sorted(models):
        spec = settings.models[model]
        batching = settings.batching_for(model)
        batch_time, cold = _model_terms(settings, model, calibration, given)
        scale = spec.autoscale
        autoscale = None if scale is None else scale.policy_config()
        pools[model] = PoolConfig(
            BatchConfig(batching.max_batch_size, batching.max_wait_ms), classes[model],
            batch_time, cold, runners=settings.runners_for(model), autoscale=autoscale,
            interval_s=scale.interval_s if scale else 2.0,
            assumed_completion_tokens=scale.assumed_completion_tokens if scale else 128.0)
    quotas = {name: TeamQuota(**team.quotas.model_dump()) for name, team in settings.teams.items()}
    breaker = settings.circuit_breaker
    return SimConfig(policy, pools, quotas,
                     BreakerConfig(breaker.max_submissions, breaker.window_s, breaker.cooldown_s)
                     if breaker else None, long_poll_s=settings.leases.long_poll_s)


def fixed_pools(config: SimConfig) -> SimConfig | None:
    """The same, with every autoscaled pool fixed at its ``max_runners``, always on (None:
    nothing is autoscaled)."""
    if all(p.autoscale is None for p in config.pools.values()):
        return None
    pools = {m: PoolConfig(p.batch, p.runner_class, p.batch_time, p.cold_start_s,
                           runners=p.autoscale.max_runners if p.autoscale else p.runners)
             for m, p in config.pools.items()}
    return SimConfig(config.policy, pools, config.quotas, config.breaker, config.long_poll_s)


def cold_machines(config: SimConfig, settings: Settings, *, billing_granularity_s: float
                  ) -> dict[str, ColdMachine]:
    """Each model on a cold machine of its class per job: the baseline."""
    return {m: ColdMachine(p.cold_start_s, p.runner_class, p.batch_time, billing_granularity_s,
                           settings.accounting.min_billed_s)
            for m, p in config.pools.items()}


