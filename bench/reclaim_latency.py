"""Reclaim latency: online requests arriving while every runner is lent to batch work.

`stoker serve` (SQLite, the tiny model, static batches of --batch-size) with --runners local
runners keeps them busy with a long batch job (max_tokens --batch-tokens: batches of several
seconds); --online single online requests then arrive one at a time, --gap-s apart. For each,
the reclaim latency is the time from its submission to the start of the pass that served it
(from the batch records). Three pools, in one run:

- ``finish``: no reserve, no reclaim: a lent runner finishes its batch, then serves online
  first (strict priority);
- ``reclaim``: no reserve, ``reclaim_grace_s`` --grace-s: the runner is told in its heartbeat
  (every ttl/3 = --ttl-s/3) to hand the batch rows back;
- ``reserve``: one runner kept free for online work (``online_reserve.runners: 1``);
- ``command``: the runners are lent to command jobs instead (the training example of
  ``examples/commands``, stepping for minutes), reclaimed as ``reclaim`` does: each online
  request stops a command (SIGTERM; it saves its checkpoint and exits), which is requeued and
  resumes once the online request is served.

Reported: the batch passes' median length and p50/p95 reclaim latency per pool, and whether
p95 is within one batch time + 2 s (the target; a command pool has no batch time: its
latency is the heartbeat, the command's checkpoint and exit, and the online pass).

    .venv/bin/python bench/reclaim_latency.py [--runners 2] [--online 15] [--pools ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from served import serve, stop, wait_for
from stoker.runner.backends.tiny_model import create_tiny_model

MODEL = "tiny-llama"


def lines(n: int, tokens: int, prefix: str) -> list[dict[str, Any]]:
    return [{"custom_id": f"{prefix}{i}", "method": "POST", "url": "/v1/completions",
             "body": {"model": MODEL, "prompt": f"{prefix} {i}: once upon a time",
                      "max_tokens": tokens, "temperature": 0}} for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


TRAIN = Path(__file__).resolve().parents[1] / "examples" / "commands" / "train_regression.py"
POOLS = ("finish", "reclaim", "reserve", "command")


def pool_config(kind: str, args: argparse.Namespace) -> dict[str, Any] | None:
    if kind in ("reclaim", "command"):
        return {"runners": 0, "reclaim_grace_s": args.grace_s}
    if kind == "reserve":
        return {"runners": 1}
    return None


def run(root: Path, kind: str, args: argparse.Namespace) -> dict[str, Any]:
    model: dict[str, Any] = {"path": str(root.parent / "m"), "runners": args.runners,
                             "max_new_tokens": 4096}
    reserve = pool_config(kind, args)
    if reserve is not None:
        model["online_reserve"] = reserve
    config = {"data_dir": str(root), "models": {MODEL: model},
              "batching": {"max_batch_size": args.batch_size, "max_wait_ms": 0,
                           "continuous": False},
              "leases": {"ttl_s": args.ttl_s, "long_poll_s": 1.0, "runner_timeout_s": 30.0},
              "commands": {"enabled": kind == "command", "log_interval_s": 0.5}}
    proc, url = serve(root, config, runners=args.runners)
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            if kind == "command":
                work = [http.post("/api/commands", json={
                    "argv": [sys.executable, str(TRAIN), "--steps", "1000000",
                             "--save-every", "100", "--pace-s", "0.01"],
                    "tier": "batch", "grace_s": 30}).json() for _ in range(args.runners)]
                wait_for(lambda: all("step 100 " in http.get(f"/api/jobs/{j['id']}/logs").text
                                     for j in work), 120, "the commands to be under way")
            else:
                work = [http.post("/api/jobs", json={
                    "requests": lines(args.batch_size * args.runners * 50, args.batch_tokens,
                                      "b"), "tier": "batch", "cache": False}).json()]
                time.sleep(args.gap_s)  # the runners are into their first batches
            online_ids = []
            for i in range(args.online):
                job = http.post("/api/jobs", json={"requests": lines(1, 4, f"o{i}-"),
                                                   "tier": "online", "cache": False}).json()
                online_ids.append((job["id"], job["created_at"]))
                wait_for(lambda j=job: http.get(f"/api/jobs/{j['id']}").json()["status"]
                         == "completed", 120, "the online request")
                time.sleep(args.gap_s)
            latencies = []
            for job_id, created in online_ids:
                [served] = http.get(f"/api/jobs/{job_id}/batches").json()["data"]
                latencies.append(served["started_at"] - created)
            full = []
            for job in work:
                passes = http.get(f"/api/jobs/{job['id']}/batches").json()["data"]
                full += [p["ended_at"] - p["started_at"] for p in passes
                         if p["job_requests"] == args.batch_size and kind != "command"]
                http.post(f"/api/jobs/{job['id']}/cancel")
    finally:
        stop(proc, timeout_s=120)
    p95 = percentile(latencies, 0.95)
    figures: dict[str, Any] = {
        "pool": kind, "latency_p50_s": round(percentile(latencies, 0.5), 2),
        "latency_p95_s": round(p95, 2), "latency_max_s": round(max(latencies), 2),
        "online_requests": len(latencies)}
    if full:
        batch_s = statistics.median(full)
        figures.update(batch_s_median=round(batch_s, 2), target_s=round(batch_s + 2.0, 2),
                       within_target=p95 <= batch_s + 2.0)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batch-tokens", type=int, default=400)
    parser.add_argument("--online", type=int, default=15)
    parser.add_argument("--gap-s", type=float, default=1.5)
    parser.add_argument("--ttl-s", type=float, default=3.0)
    parser.add_argument("--grace-s", type=float, default=0.0)
    parser.add_argument("--pools", nargs="+", choices=POOLS, default=list(POOLS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    found = []
    with tempfile.TemporaryDirectory(prefix="stoker-reclaim-") as tmp:
        create_tiny_model(Path(tmp) / "m")
        for kind in args.pools:
            root = Path(tmp) / kind
            root.mkdir()
            found.append(run(root, kind, args))
    if args.json:
        print(json.dumps(found, indent=2))
        return
    for figures in found:
        print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
