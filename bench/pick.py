"""Cost of the scheduling policy at depth: time to pick a batch with 1, 10k and 1M queued
requests across 50 teams and 5 tiers, on the SQLite store.

A pick is what a runner's lease call does before it touches any request: read the queue's
summary per (tier, team) and run the core batch former over it. The lease itself (marking the
chosen requests leased, durably) is timed too. Target: <= 5 ms per pick at 1M queued.

    .venv/bin/python bench/pick.py [--depths 1,10000,1000000] [--picks 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from stoker.core.batching import BatchConfig, Dispatch, SchedulingPolicy, plan_batch
from stoker.core.fair_share import FairShareState
from stoker.core.model import RunnerState
from stoker.core.tiers import DEFAULT_TIERS
from stoker.store import NewJob, NewRequest
from stoker.store.sqlite import SQLiteStore

MODEL = "tiny-llama"
TEAMS = [f"team-{i:02d}" for i in range(50)]
CONFIG = BatchConfig(max_batch_size=16, max_wait_ms=0)
POLICY = SchedulingPolicy(tiers={t.name: t for t in DEFAULT_TIERS},
                          team_weights={t: 1.0 + (i % 3) for i, t in enumerate(TEAMS)},
                          starvation_age_s=600, starvation_ceiling=80)


def fill(store: SQLiteStore, depth: int, now: float) -> None:
    """Spread ``depth`` queued requests over every (team, tier), in jobs of up to 10k."""
    groups = [(team, tier) for team in TEAMS for tier in DEFAULT_TIERS]
    per_group = max(1, depth // len(groups))
    left = depth
    for n, (team, tier) in enumerate(groups):
        size = min(per_group if n < len(groups) - 1 else left, left)
        while size > 0:
            chunk = min(size, 10_000)
            requests = [NewRequest(f"r{left - i}", "/v1/completions", {"prompt": "p"})
                        for i in range(chunk)]
            store.submit_job(NewJob(team=team, tier=tier.name, priority=tier.priority,
                                    model=MODEL, requests=requests, max_attempts=3),
                             now=now - left)
            size -= chunk
            left -= chunk
        if left <= 0:
            break


def measure(depth: int, picks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="stoker-pick-") as tmp:
        store = SQLiteStore(Path(tmp) / "stoker.db")
        now = 2_000_000_000.0
        started = time.perf_counter()
        fill(store, depth, now)
        fill_s = time.perf_counter() - started
        runner = store.register_runner(name="bench", model=MODEL, pid=None, host="bench",
                                       max_batch_size=16, max_wait_ms=0, now=now)
        store.set_runner_state(runner.id, RunnerState.IDLE, now=now)
        pick_ms, lease_ms = [], []
        share = FairShareState()
        for _ in range(picks):
            t0 = time.perf_counter()
            decision, share = plan_batch(store.queue_groups(MODEL), share, CONFIG, POLICY,
                                         now=now)
            t1 = time.perf_counter()
            pick_ms.append((t1 - t0) * 1000)
            if depth >= 10_000 and isinstance(decision, Dispatch):
                store.lease_batch(runner.id, MODEL, decision.picks, ttl_s=60, now=now)
                lease_ms.append((time.perf_counter() - t1) * 1000)
        store.close()
    result = {"depth": depth, "fill_s": round(fill_s, 1),
              "pick_ms_p50": statistics.median(pick_ms),
              "pick_ms_p99": statistics.quantiles(pick_ms, n=100)[98]}
    if lease_ms:
        result["lease_ms_p50"] = statistics.median(lease_ms)
        result["lease_ms_p99"] = statistics.quantiles(lease_ms, n=100)[98]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--depths", default="1,10000,1000000")
    parser.add_argument("--picks", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(int(d), args.picks) for d in args.depths.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"{'queued':>10} {'fill s':>7} {'pick p50 ms':>12} {'pick p99 ms':>12} "
          f"{'lease p50 ms':>13} {'lease p99 ms':>13}")
    for r in results:
        print(f"{r['depth']:>10} {r['fill_s']:>7} {r['pick_ms_p50']:>12.3f} "
              f"{r['pick_ms_p99']:>12.3f} {r.get('lease_ms_p50', float('nan')):>13.3f} "
              f"{r.get('lease_ms_p99', float('nan')):>13.3f}")


if __name__ == "__main__":
    main()
