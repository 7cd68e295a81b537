"""PNG charts of a simulation (matplotlib, drawn off-screen)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: files only

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from stoker.core.model import RunnerState
from stoker.planning.sweep import Point, p95_wait
from stoker.sim.engine import SimOutcome
from stoker.sim.results import STATES, Summary


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def cost_chart(summaries: Sequence[Summary], path: Path) -> Path:
    """GPU cost by runner state, one stacked bar per way of running the trace."""
    fig, ax = plt.subplots(figsize=(7, 4))
    bottoms = [0.0] * len(summaries)
    for state in STATES:
        values = [s.cost_by_state_usd.get(state.value, 0.0) for s in summaries]
        ax.bar([s.label for s in summaries], values, bottom=bottoms, label=state.value)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("USD")
    ax.set_title("GPU cost by runner state")
    ax.legend()
    return _save(fig, path)


def wait_chart(summaries: Sequence[Summary], path: Path) -> Path:
    """p95 queue wait per tier, side by side for each way of running the trace."""
    tiers = sorted({t.tier for s in summaries for t in s.tiers})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(summaries), 1)
    for i, s in enumerate(summaries):
        found = [s.tier(t) for t in tiers]
        values = [(f.queue_wait.p95_s or 0.0) if f is not None else 0.0 for f in found]
        ax.bar([x + i * width for x in range(len(tiers))], values, width, label=s.label)
    ax.set_xticks([x + width * (len(summaries) - 1) / 2 for x in range(len(tiers))], tiers)
    ax.set_ylabel("p95 queue wait (s)")
    ax.set_yscale("symlog")
    ax.legend()
    return _save(fig, path)


def runners_chart(outcome: SimOutcome, path: Path) -> Path:
    """Runners warm (idle or busy) and starting over the simulated time, in hours."""
    changes: dict[str, list[tuple[float, int]]] = {"warm": [], "starting": []}
    warm_states = {RunnerState.IDLE, RunnerState.BUSY}
    for span in outcome.records.spans:
        kind = "warm" if span.state in warm_states else \
            "starting" if span.state == RunnerState.STARTING else None
        if kind is None:
            continue
        changes[kind].append((span.started_at, 1))
        changes[kind].append((span.ended_at if span.ended_at is not None else outcome.until, -1))
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for kind, steps in changes.items():
        xs, ys, level = [0.0], [0], 0
        for at, delta in sorted(steps):
            level += delta
            xs.append((at - outcome.since) / 3600.0)
            ys.append(level)
        ax.step(xs, ys, where="post", label=kind)
    ax.set_xlabel("hours")
    ax.set_ylabel("runners")
    ax.legend()
    return _save(fig, path)


def frontier_chart(points: Sequence[Point], tier: str, marked: Mapping[str, Point | None],
                   path: Path) -> Path:
    """Cost against ``tier``'s p95 wait for every combination of a sweep."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [p95_wait(p, tier) or 0.0 for p in points]
    ys = [p.summary.cost_usd for p in points]
    ax.scatter(xs, ys)
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(" ".join(f"{k.split('.')[-1]}={v}" for k, v in p.setting.items()), (x, y),
                    fontsize=6)
    best = marked.get(tier)
    if best is not None:
        ax.scatter([p95_wait(best, tier) or 0.0], [best.summary.cost_usd], s=120,
                   facecolors="none", edgecolors="red", label=f"cheapest meeting {tier}'s target")
        ax.legend()
    ax.set_xlabel(f"{tier} p95 queue wait (s)")
    ax.set_ylabel("USD")
    return _save(fig, path)
