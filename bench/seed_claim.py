"""The first seed's claim, simulated: what a warm, batched, autoscaled pool saves on CI evals
against one cold GPU per job, and against a fixed always-on pool.

The trace is synthetic and shaped like the seed (`stoker trace synth`): pull-request smoke
suites of 5-10 prompts through the working day (fewer at night and at weekends), one nightly
500-prompt regression per team, a week long. Each prompt takes 200-800 prompt tokens and
100-300 completion tokens. The batch time is the research curve (an 8B model on an
H100-class GPU: 50 tokens/s for one row, 16 rows 14x that); a new machine takes 120 s to boot
and load the model, so one cold GPU per job is billed about 3 minutes (whole minutes) for
about 40 s of work, as the seed measured. Three pools, each simulated on Stoker's own
policies (`stoker simulate`):

- the seed's pool: 2-6 runners, keep warm 1800 s, batches of 16, max wait 2000 ms;
- Stoker scaling to zero: 0-6 runners, keep warm 600 s, the same batching;
- the seed's pool fixed at 6 runners, always on.

Reported for several pull-request volumes: cost, saving against one cold GPU per job, and
the smoke tier's p95 queue wait against the goal of one batch time + max_wait_ms.

    .venv/bin/python bench/seed_claim.py [--seed 7] [--prs 200,900,2000,4000] [--json]
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from stoker.accounting.view import cost_config
from stoker.planning.setup import Given, cold_machines, fixed_pools, sim_config
from stoker.settings import load_settings
from stoker.sim.batch_time import research_curve
from stoker.sim.engine import simulate
from stoker.sim.results import per_job_baseline, saving, summarize
from stoker.sim.synth import CIShape, span_s, synth_ci_trace

COLD_START_S = 120.0
MAX_WAIT_MS = 2000
BATCH = 16


def pool_config(min_runners: int, keep_warm_s: float, scale_to_zero: bool) -> dict[str, Any]:
    return {
        "default_model": "llama",
        "batching": {"max_batch_size": BATCH, "max_wait_ms": MAX_WAIT_MS},
        "models": {"llama": {
            "backend": "openai", "base_url": "http://127.0.0.1:9/v1",
            "runner_class": "h100-80gb",
            "autoscale": {"min_runners": min_runners, "max_runners": 6,
                          "keep_warm_s": keep_warm_s, "scale_to_zero": scale_to_zero,
                          "cooldown_s": 60, "assumed_cold_start_s": COLD_START_S,
                          "assumed_tokens_per_runner_s": 500}}},
    }


POOLS = {"seed's pool (2-6, warm 1800 s)": pool_config(2, 1800.0, False),
         "stoker (0-6, warm 600 s)": pool_config(0, 600.0, True)}


def measure(prs: float, seed: int) -> dict[str, Any]:
    shape = CIShape(model="llama", pull_requests_per_weekday=prs)
    trace = synth_ci_trace(shape, seed=seed)
    curve = research_curve()
    goal_s = curve.batch_s([800] * BATCH, [300] * BATCH) + MAX_WAIT_MS / 1000.0
    given = Given(curve, COLD_START_S)
    row: dict[str, Any] = {"prs_per_weekday": prs, "jobs": len(trace),
                           "requests": sum(j.requests for j in trace),
                           "smoke_goal_s": goal_s, "pools": {}}
    baseline = None
    for label, raw in POOLS.items():
        settings = load_settings(None, **raw)
        config = sim_config(settings, {"llama"}, {}, given)
        outcome = simulate(trace, config, since=0.0, until=span_s(shape))
        ours = summarize(outcome, label, cost_config(settings))
        if baseline is None:
            baseline = per_job_baseline(trace, cold_machines(config, settings,
                                                             billing_granularity_s=60.0))
            fixed_config = fixed_pools(config)
            assert fixed_config is not None
            fixed = summarize(simulate(trace, fixed_config, since=0.0, until=span_s(shape)),
                              "fixed 6 always on", cost_config(settings))
            row["per_job_cost_usd"] = baseline.cost_usd
            row["fixed_cost_usd"] = fixed.cost_usd
        smoke = ours.tier("smoke")
        row["pools"][label] = {
            "cost_usd": ours.cost_usd, "utilization": ours.utilization,
            "saving_vs_per_job": saving(ours, baseline),
            "saving_vs_fixed": 1 - ours.cost_usd / row["fixed_cost_usd"],
            "smoke_p95_wait_s": smoke.queue_wait.p95_s if smoke else None,
            "unfinished": ours.unfinished_requests}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--prs", default="200,900,2000,4000",
                        help="pull requests per weekday, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = [measure(float(p), args.seed) for p in args.prs.split(",")]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['prs_per_weekday']:.0f} PRs/weekday ({row['jobs']} jobs, "
              f"{row['requests']} requests): one cold GPU per job ${row['per_job_cost_usd']:,.0f}, "
              f"fixed 6 always on ${row['fixed_cost_usd']:,.0f}; smoke goal "
              f"{row['smoke_goal_s']:.1f} s")
        for label, p in row["pools"].items():
            print(f"  {label:32} ${p['cost_usd']:>9,.0f}  saves {p['saving_vs_per_job']:6.0%} vs "
                  f"per job, {p['saving_vs_fixed']:4.0%} vs fixed; utilization "
                  f"{p['utilization']:4.0%}; smoke p95 wait {p['smoke_p95_wait_s']:.1f} s"
                  + (f"; {p['unfinished']} unfinished" if p["unfinished"] else ""))


if __name__ == "__main__":
    main()
