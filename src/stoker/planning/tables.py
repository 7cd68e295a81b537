"""The simulator's answers as terminal tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Group
from rich.table import Table

from stoker.planning.sweep import Point, meets, p95_wait
from stoker.report import seconds, usd
from stoker.sim.results import Summary, saving


def comparison(summaries: Sequence[Summary]) -> Group:
    """Cost, hours by state and utilization, then waits per tier, one column per run."""
    first = summaries[0]
    cost = Table("", *[s.label for s in summaries], title="GPU cost")
    cost.add_row("cost", *[usd(s.cost_usd) for s in summaries])
    cost.add_row("stoker saves vs this", *["–" if s is first else f"{saving(first, s):.0%}"
                                     for s in summaries])
    cost.add_row("GPU-hours", *[f"{s.gpu_hours:,.1f}" for s in summaries])
    for state in first.gpu_hours_by_state:
        cost.add_row(f"  {state}", *[f"{s.gpu_hours_by_state.get(state, 0.0):,.1f} h"
                                     f" ({usd(s.cost_by_state_usd.get(state, 0.0))})"
                                     for s in summaries])
    cost.add_row("utilization", *[f"{s.utilization:.0%}" for s in summaries])
    cost.add_row("refused jobs", *[str(s.refused_jobs) for s in summaries])
    cost.add_row("unfinished requests", *[str(s.unfinished_requests) for s in summaries])
    waits = Table("tier", "run", "jobs", "wait p50", "wait p95", "wait p99", "done p50",
                  "done p95", "done p99", title="Queue wait and job completion time")
    for tier in sorted({t.tier for s in summaries for t in s.tiers}):
        for s in summaries:
            t = s.tier(tier)
            if t is not None:
                waits.add_row(tier, s.label, str(t.jobs), seconds(t.queue_wait.p50_s),
                              seconds(t.queue_wait.p95_s), seconds(t.queue_wait.p99_s),
                              seconds(t.completion.p50_s), seconds(t.completion.p95_s),
                              seconds(t.completion.p99_s))
    return Group(cost, waits)


def sweep_table(points: Sequence[Point], front: Sequence[Point], tiers: Sequence[str],
                targets: Mapping[str, float], best: Mapping[str, Point | None]) -> Group:
    """Every combination, cheapest first: cost, p95 wait per tier, whether it is on the
    frontier, and which tiers' targets it is the cheapest to meet."""
    keys = list(points[0].setting) if points else []
    table = Table(*keys, "cost", *[f"{t} p95" for t in tiers], "frontier", "cheapest for",
                  title="What-if sweep (targets: " + ", ".join(
                      f"{t} ≤ {seconds(v)}" for t, v in targets.items()) + ")")
    for p in sorted(points, key=lambda p: p.summary.cost_usd):
        ok = meets(p, targets)
        cells = []
        for t in tiers:
            mark = "" if t not in ok else (" ✓" if ok[t] else " ✗")
            cells.append(seconds(p95_wait(p, t)) + mark)
        table.add_row(*[str(v) for v in p.setting.values()], usd(p.summary.cost_usd), *cells,
                      "●" if p in front else "",
                      ", ".join(t for t, b in best.items() if b is p))
    return Group(table)
