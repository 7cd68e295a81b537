"""`stoker simulate` and `stoker trace`: plan a pool before paying for it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from stoker.errors import StokerError
from stoker.settings import Settings, load_settings

trace_app = typer.Typer(help="Job traces for the simulator: export a real run's, or make one.",
                        no_args_is_help=True)

_out = Console()
_err = Console(stderr=True)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="stoker.yaml")]


def _fail(message: str) -> typer.Exit:
    _err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(2)


def _when(text: str) -> float:
    """Unix seconds, or an ISO 8601 date or time (UTC unless it says)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is neither unix seconds nor an ISO 8601 time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


@trace_app.command("synth")
def trace_synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="trace file to write")],
    days: Annotated[int, typer.Option(min=1, max=366)] = 7,
    seed: Annotated[int, typer.Option(help="same seed, same trace")] = 7,
    prs_per_weekday: Annotated[float, typer.Option(min=0)] = 200.0,
    weekend_fraction: Annotated[float, typer.Option(min=0, max=1)] = 0.15,
    model: Annotated[str, typer.Option(help="the model every job asks for")] = "default",
    team: Annotated[list[str] | None, typer.Option(help="a team (repeat for more)")] = None,
    burst: Annotated[list[str] | None, typer.Option(
        help="DAY:HOUR[:JOBS[:MINUTES]] smoke jobs at once, e.g. 4:16:4000:10")] = None,
) -> None:
    """A CI-like trace: pull-request smoke suites by hour and weekday, nightly regressions,
    bursts. Time 0 is a Monday 00:00 UTC."""
    from stoker.sim.synth import CIShape, parse_burst, synth_ci_trace
    from stoker.sim.trace import write_trace

    try:
        shape = CIShape(days=days, pull_requests_per_weekday=prs_per_weekday,
                        weekend_fraction=weekend_fraction, model=model,
                        teams=tuple(team) if team else CIShape().teams,
                        bursts=tuple(parse_burst(b) for b in burst or []))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    jobs = synth_ci_trace(shape, seed=seed)
    with out.open("w", encoding="utf-8") as f:
        write_trace(jobs, f)
    _err.print(f"{len(jobs)} jobs, {sum(j.requests for j in jobs)} requests → {out}")


@trace_app.command("export")
def trace_export(
    out: Annotated[Path, typer.Option("--out", "-o", help="trace file to write")],
    config: ConfigOpt = None,
    since: Annotated[str | None, typer.Option(help="unix s or ISO time; default until − 24 h")
                     ] = None,
    until: Annotated[str | None, typer.Option(help="unix s or ISO time; default now")] = None,
    calibration: Annotated[Path | None, typer.Option(
        help="also write each model's fitted batch time and cold start here")] = None,
) -> None:
    """A real run's trace from the store: each job's arrival, team, tier, model and the
    tokens its requests took."""
    from stoker.accounting.view import model_classes, runner_classes
    from stoker.planning.setup import calibrate, write_calibration
    from stoker.sim.trace import trace_from_usage, write_trace
    from stoker.store import open_store

    try:
        settings = load_settings(config)
        end = _when(until) if until else time.time()
        start = _when(since) if since else end - 86_400.0
    except (StokerError, ValueError) as exc:
        raise _fail(str(exc)) from None
    if start >= end:
        raise _fail("--since must come before --until")
    store = open_store(settings.store.get_secret_value() if settings.store else None,
                       sqlite_path=settings.database_path, pool_size=2)
    try:
        records = store.usage_records(since=start, until=end, classes=model_classes(settings),
                                      default_class=runner_classes(settings)["cpu"])
    finally:
        store.close()
    jobs = trace_from_usage(records)
    with out.open("w", encoding="utf-8") as f:
        write_trace(jobs, f)
    _err.print(f"{len(jobs)} jobs → {out}")
    if calibration is not None:
        found = calibrate(records)
        write_calibration(found, calibration)
        _err.print(f"batch time and cold start of {len(found)} model(s) → {calibration}")


@dataclass(frozen=True, slots=True)
class _Run:
    """What `stoker simulate` was asked."""

    raw: dict[str, Any]
    trace: list[Any]
    calibration: dict[str, Any]
    given: Any
    since: float | None
    until: float | None
    billing_granularity_s: float


def simulate(
    trace: Annotated[Path, typer.Option("--trace", "-t", help="trace file (JSON Lines)")],
    config: ConfigOpt = None,
    calibration: Annotated[Path | None, typer.Option(
        help="batch time and cold start measured by `stoker trace export`")] = None,
    batch_time: Annotated[str | None, typer.Option(
        help="'research' or STEP_S[,STEP_S_PER_ROW[,PREFILL_S_PER_TOKEN]]")] = None,
    cold_start_s: Annotated[float | None, typer.Option(min=0)] = None,
    since: Annotated[float | None, typer.Option(help="start, in trace time")] = None,
    until: Annotated[float | None, typer.Option(
        help="end, in trace time (default: when the last request is done)")] = None,
    billing_granularity_s: Annotated[float, typer.Option(
        min=1, help="how a per-job cold machine is billed (the baseline)")] = 60.0,
    sweep: Annotated[list[str] | None, typer.Option(
        help="KEY=A..B or KEY=V1,V2 (repeat): every combination")] = None,
    wait_target: Annotated[list[str] | None, typer.Option(
        help="TIER=SECONDS, a p95 queue wait target (default: each tier's drain_target_s)")
    ] = None,
    charts: Annotated[Path | None, typer.Option(help="write PNG charts to this folder")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Replay a trace through a simulated pool on Stoker's own policies: cost by runner
    state, utilization and waits per tier, beside one cold GPU per job and an always-on pool."""
    from stoker.planning.setup import Given, parse_batch_time, read_calibration
    from stoker.sim.trace import TraceError, read_trace

    try:
        raw = _raw_config(config)
        with trace.open(encoding="utf-8") as f:
            jobs = read_trace(f)
        if not jobs:
            raise ValueError(f"{trace} holds no jobs")
        run = _Run(raw, jobs, read_calibration(calibration) if calibration else {},
                   Given(parse_batch_time(batch_time) if batch_time else None, cold_start_s),
                   since, until, billing_granularity_s)
        if sweep:
            _sweep(run, sweep, wait_target or [], charts, as_json)
        else:
            _simulate_once(run, charts, as_json)
    except (StokerError, TraceError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None


def _raw_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    load_settings(path)  # refuses a bad file with its own message
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    return dict(loaded or {})


def _settings(raw: dict[str, Any]) -> Settings:
    return load_settings(None, **raw)


def _summaries(run: _Run, settings: Settings) -> tuple[list[Any], Any]:
    from stoker.accounting.view import cost_config
    from stoker.planning.setup import cold_machines, fixed_pools, sim_config
    from stoker.sim.engine import simulate as run_simulation
    from stoker.sim.results import per_job_baseline, summarize

    config = sim_config(settings, {j.model for j in run.trace}, run.calibration, run.given)
    outcome = run_simulation(run.trace, config, since=run.since, until=run.until)
    costs = cost_config(settings)
    found = [summarize(outcome, "stoker", costs)]
    fixed = fixed_pools(config)
    if fixed is not None:
        sizes = "+".join(str(p.runners) for p in fixed.pools.values())
        found.append(summarize(run_simulation(run.trace, fixed, since=outcome.since,
                                              until=outcome.until),
                               f"fixed {sizes} always on", costs))
    found.append(per_job_baseline(run.trace, cold_machines(
        config, settings, billing_granularity_s=run.billing_granularity_s)))
    return found, outcome


def _simulate_once(run: _Run, charts: Path | None, as_json: bool) -> None:
    from stoker.planning.charts import cost_chart, runners_chart, wait_chart
    from stoker.planning.tables import comparison
    from stoker.sim.results import saving

    summaries, outcome = _summaries(run, _settings(run.raw))
    if charts is not None:
        charts.mkdir(parents=True, exist_ok=True)
        written = [cost_chart(summaries, charts / "cost.png"),
                   wait_chart(summaries, charts / "wait.png"),
                   runners_chart(outcome, charts / "runners.png")]
        _err.print("charts: " + ", ".join(str(p) for p in written))
    if as_json:
        ours = summaries[0]
        sys.stdout.write(json.dumps({
            "runs": [s.as_json() for s in summaries],
            "saving": {s.label: saving(ours, s) for s in summaries[1:]}}, indent=2) + "\n")
    else:
        _out.print(comparison(summaries))


def _targets(settings: Settings, tiers: Sequence[str], given: Sequence[str]) -> dict[str, float]:
    from stoker.api.scheduling import build_tiers

    known = build_tiers(settings)
    targets = {t: known[t].drain_target_s for t in tiers if t in known}
    for item in given:
        tier, sep, value = item.partition("=")
        try:
            targets[tier] = float(value)
        except ValueError:
            raise ValueError(f"--wait-target takes TIER=SECONDS, got {item!r}") from None
        if not sep or not tier:
            raise ValueError(f"--wait-target takes TIER=SECONDS, got {item!r}")
    return targets


def _sweep(run: _Run, specs: Sequence[str], given_targets: Sequence[str],
           charts: Path | None, as_json: bool) -> None:
    from stoker.planning.charts import frontier_chart
    from stoker.planning.sweep import (
        Point,
        apply,
        cheapest_meeting,
        combinations,
        frontier,
        meets,
        parse_sweep,
    )
    from stoker.planning.tables import sweep_table

    sweeps = [parse_sweep(s) for s in specs]
    points = []
    for setting in combinations(sweeps):
        summaries, _ = _summaries(run, _settings(apply(run.raw, setting)))
        points.append(Point(setting, summaries[0]))
    tiers = sorted({t.tier for p in points for t in p.summary.tiers})
    targets = _targets(_settings(run.raw), tiers, given_targets)
    front = frontier(points, tiers)
    best = cheapest_meeting(points, targets)
    if charts is not None:
        charts.mkdir(parents=True, exist_ok=True)
        for tier in targets:
            frontier_chart(points, tier, best, charts / f"frontier-{tier}.png")
        _err.print(f"charts in {charts}")
    if as_json:
        sys.stdout.write(json.dumps({
            "targets": targets,
            "points": [{"setting": p.setting, "on_frontier": p in front, "meets": meets(p, targets),
                        **p.summary.as_json()} for p in points],
            "cheapest_meeting": {t: (b.setting if b else None) for t, b in best.items()},
        }, indent=2) + "\n")
    else:
        _out.print(sweep_table(points, front, tiers, targets, best))
