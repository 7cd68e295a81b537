"""A burst against a pool that sizes itself, and against a fixed pool of its maximum.

`stoker serve` (SQLite, the tiny model) with an autoscaled pool of --min / --max local runners
takes a burst of --burst requests in one job; then the same burst against a fixed pool of --max
runners. Reported for each: the most runners warm at once while the burst ran and seconds from
the burst to the last of them warm (fixed: 0, warm already), seconds to drain the burst, and the
runner-seconds spent idle from the burst's end over the same window (--after-s; long enough for
the autoscaled pool to return to its minimum after keep-warm), read from the runners' recorded
state intervals.

    .venv/bin/python bench/autoscale.py [--burst 2000] [--min 1] [--max 4] [--keep-warm-s 20]
                                        [--after-s 60] [--drain-target-s 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from served import wait_for
from stoker.runner.backends.tiny_model import create_tiny_model
from stoker.store.sqlite import SQLiteStore

MODEL = "tiny-llama"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def burst(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"b{i}", "method": "POST", "url": "/v1/completions",
             "body": {"model": MODEL, "prompt": f"Item {i}: say something short.",
                      "max_tokens": 16, "temperature": 0}} for i in range(n)]


def runners(url: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{url}/api/runners", timeout=10).json()["data"])


def run(root: Path, args: argparse.Namespace, *, autoscaled: bool) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    model: dict[str, Any] = {"path": str(root.parent / "m")}
    if autoscaled:
        model["autoscale"] = {"min_runners": args.min, "max_runners": args.max,
                              "keep_warm_s": args.keep_warm_s, "cooldown_s": 2.0,
                              "interval_s": 1.0}
    else:
        model["runners"] = args.max
    config = {"port": port, "data_dir": str(root), "models": {MODEL: model},
              "batching": {"max_batch_size": 16, "max_wait_ms": 20},
              # The burst should be done within 10 s, more than one runner can do (one takes
              # about 18 s here): the autoscaler sizes the pool for that.
              "tiers": {"batch": {"priority": 40, "drain_target_s": args.drain_target_s}}}
    (root / "stoker.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "stoker.cli", "serve", "--config",
                             str(root / "stoker.yaml")], cwd=root,
                            stdout=(root / "serve.log").open("ab"), stderr=subprocess.STDOUT)
    try:
        ready = args.min if autoscaled else args.max
        wait_for(lambda: sum(r["state"] == "idle" for r in runners(url)) >= ready, 180,
                 f"{ready} idle runners")
        t0 = time.time()
        job = httpx.post(f"{url}/api/jobs", json={"requests": burst(args.burst)},
                         timeout=60).json()
        peak, peak_at = (args.max, t0) if not autoscaled else (0, t0)
        while True:
            warm = sum(r["state"] in ("idle", "busy") for r in runners(url))
            if warm > peak:
                peak, peak_at = warm, time.time()
            status = httpx.get(f"{url}/api/jobs/{job['id']}", timeout=10).json()
            if status["status"] == "completed":
                break
            time.sleep(0.2)
        done_at = time.time()
        time.sleep(args.after_s)
        window_end = time.time()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    store = SQLiteStore(root / "stoker.db")
    try:
        idle_s = 0.0
        for r in store.list_runners(include_stopped=True):
            for span in store.runner_intervals(r.id):
                if span.state.value != "idle":
                    continue
                start = max(span.started_at, done_at)
                end = min(span.ended_at if span.ended_at is not None else window_end,
                          window_end)
                idle_s += max(0.0, end - start)
        decisions = store.pool_decisions(model=MODEL, limit=1000)
    finally:
        store.close()
    return {
        "pool": f"autoscaled {args.min}-{args.max}" if autoscaled else f"fixed {args.max}",
        "peak_warm_runners": peak,
        "last_runner_warm_after_s": round(peak_at - t0, 1),
        "burst_drained_s": round(done_at - t0, 1),
        "idle_runner_s_after_burst": round(idle_s, 1),
        "window_s": round(window_end - done_at, 1),
        "decisions": len(decisions),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=2000)
    parser.add_argument("--min", type=int, default=1)
    parser.add_argument("--max", type=int, default=4)
    parser.add_argument("--keep-warm-s", type=float, default=20.0)
    parser.add_argument("--after-s", type=float, default=60.0)
    parser.add_argument("--drain-target-s", type=float, default=10.0,
                        help="the batch tier's drain target")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stoker-autoscale-") as tmp:
        create_tiny_model(Path(tmp) / "m")
        found = []
        for autoscaled in (True, False):
            root = Path(tmp) / ("auto" if autoscaled else "fixed")
            root.mkdir()
            found.append(run(root, args, autoscaled=autoscaled))
    if args.json:
        print(json.dumps(found, indent=2))
        return
    for figures in found:
        print(" ".join(f"{k}={v}" for k, v in figures.items()))
    auto, fixed = found
    if fixed["idle_runner_s_after_burst"]:
        print(f"idle runner-seconds after the burst, autoscaled / fixed: "
              f"{auto['idle_runner_s_after_burst'] / fixed['idle_runner_s_after_burst']:.2f}")


if __name__ == "__main__":
    main()
