"""Load test of the queue through the API: simulated runners (lease and complete, no model)
and clients, on SQLite and on PostgreSQL, compared in the same run with the store driven
directly (no HTTP) to show the API's overhead.

Reports sustained submitted and completed requests/s and lease latency p50/p99 (lease calls
that returned work), counted over the last ``--seconds`` after a warm-up. Targets on a 2-core
machine: >= 2,000 requests/s completed through the API on PostgreSQL with batches of 16; lease
p99 <= 50 ms at 32 runners.

Each API run is made once per ``--batch-ms``: with 0 the simulated runners ask again the moment
they report, so the API is saturated and the figure is its capacity (and a lease waits behind
every other runner's calls); with 200 each runner holds its batch as a GPU decoding it would,
so the lease latency is the API's own at the load that many runners make. Clients offer more
than runners take (``--rate``), so every lease finds work.

    .venv/bin/python bench/queue_load.py [--seconds 20] [--runners 32] [--stores sqlite,postgresql]
                                    [--batch-ms 0,200] [--rate 4000] [--replicas 2]
                                    [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import yaml

BATCH = 16
JOB_SIZE = 512
WARMUP_S = 3.0


def line(i: int) -> dict[str, Any]:
    return {"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
            "body": {"prompt": f"p{i}", "max_tokens": 4}}


def result(req: dict[str, Any]) -> dict[str, Any]:
    return {"request_id": req["id"], "text": "ok", "finish_reason": "stop",
            "prompt_tokens": 3, "completion_tokens": 4}


# -- simulated runners and clients (run in child processes) -------------------------------

async def _runner(base: str, until: float, batch_s: float, lat: list[tuple[float, float]],
                  done: list[tuple[float, int]]) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        reg = (await http.post("/api/runners", json={"name": "sim", "model": "sim-model",
                                                     "max_batch_size": BATCH})).json()
        rid = reg["runner"]["id"]
        await http.post(f"/api/runners/{rid}/state", json={"state": "idle"})
        while time.time() < until:
            t0 = time.perf_counter()
            got = (await http.post(f"/api/runners/{rid}/lease", json={"wait_s": 1})).json()
            if not got["requests"]:
                continue
            started = time.time()
            lat.append((started, time.perf_counter() - t0))
            await asyncio.sleep(batch_s)  # the batch's forward passes, on a GPU elsewhere
            await http.post(f"/api/runners/{rid}/complete", json={
                "lease_id": got["lease"]["id"], "started_at": started, "ended_at": time.time(),
                "results": [result(r) for r in got["requests"]]})
            done.append((time.time(), len(got["requests"])))
        await http.post(f"/api/runners/{rid}/state", json={"state": "draining"})
        await http.post(f"/api/runners/{rid}/state", json={"state": "stopped"})


def runner_process(base: str, count: int, until: float, batch_s: float, out: Any) -> None:
    lat: list[tuple[float, float]] = []
    done: list[tuple[float, int]] = []

    async def main() -> None:
        await asyncio.gather(*(_runner(base, until, batch_s, lat, done) for _ in range(count)))

    asyncio.run(main())
    out.put({"lat": lat, "done": done})


def client_process(base: str, until: float, rate: float, out: Any) -> None:
    submitted: list[tuple[float, int]] = []
    start = time.time()
    with httpx.Client(base_url=base, timeout=60) as http:
        while time.time() < until:
            due = (time.time() - start) * rate
            if sum(n for _, n in submitted) + JOB_SIZE > due + JOB_SIZE * 4:
                time.sleep(0.01)
                continue
            r = http.post("/api/jobs", json={"requests": [line(i) for i in range(JOB_SIZE)],
                                             "cache": False})
            if r.status_code == 201:
                submitted.append((time.time(), JOB_SIZE))
    out.put({"submitted": submitted})


# -- through the API ----------------------------------------------------------------------

def start_server(workdir: Path, store: str | None) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A model name of its own: the simulated runners load nothing, and serve makes no model.
    config = {"port": port, "data_dir": str(workdir), "default_model": "sim-model",
              "models": {"sim-model": {"path": str(workdir / "no-model")}},
              "batching": {"max_batch_size": BATCH, "max_wait_ms": 0},
              "leases": {"ttl_s": 30, "long_poll_s": 2}}
    if store:
        config["store"] = store
    path = workdir / "stoker.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "stoker.cli", "serve", "--config", str(path),
                             "--runners", "0"], stdout=(workdir / "serve.log").open("wb"),
                            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"server did not start; see {workdir / 'serve.log'}")


def through_api(store: str | None, seconds: float, runners: int, rate: float,
                replicas: int, batch_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="stoker-queue-") as tmp:
        servers = []
        for i in range(replicas):
            workdir = Path(tmp) / f"replica-{i}"
            workdir.mkdir()
            servers.append(start_server(workdir, store))
        bases = [base for _, base in servers]
        try:
            ctx = mp.get_context("spawn")
            out = ctx.Queue()
            # Processes start slowly on a busy machine: count only what happens in the last
            # ``seconds``, once every runner has registered and the queue has work.
            until = time.time() + seconds + WARMUP_S
            procs = [ctx.Process(target=client_process,
                                 args=(bases[i % len(bases)], until, rate / 2, out))
                     for i in range(2)]
            per = max(1, runners // 4)
            procs += [ctx.Process(target=runner_process,
                                  args=(bases[i % len(bases)], per, until, batch_s, out))
                      for i in range(runners // per)]
            for p in procs:
                p.start()
            reports = [out.get(timeout=seconds + 120) for _ in procs]
            for p in procs:
                p.join()
        finally:
            for proc, _ in servers:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=60)
    since = until - seconds

    def in_window(key: str) -> list[float]:
        return [v for r in reports for t, v in r.get(key, []) if since <= t <= until]

    lat = in_window("lat")
    return {"replicas": replicas, "batch_ms": batch_s * 1000,
            "submitted_per_s": sum(in_window("submitted")) / seconds,
            "completed_per_s": sum(in_window("done")) / seconds,
            "lease_ms_p50": statistics.median(lat) * 1000 if lat else None,
            "lease_ms_p99": statistics.quantiles(lat, n=100)[98] * 1000 if len(lat) > 1
            else None}


# -- the store driven directly --------------------------------------------------------------

def direct(store_url: str | None, seconds: float, runners: int) -> dict[str, Any]:
    from stoker.core.batching import BatchConfig, Dispatch, SchedulingPolicy, plan_batch
    from stoker.core.fair_share import FairShareState
    from stoker.core.model import RunnerState
    from stoker.core.tiers import DEFAULT_TIERS
    from stoker.store import NewJob, NewRequest, RequestOutcome, open_store

    with tempfile.TemporaryDirectory(prefix="stoker-direct-") as tmp:
        store = open_store(store_url, sqlite_path=Path(tmp) / "s.db")
        policy = SchedulingPolicy(tiers={t.name: t for t in DEFAULT_TIERS})
        config = BatchConfig(BATCH, 0)
        stop = time.time() + seconds
        done: list[int] = []
        lat: list[float] = []

        def client() -> None:
            while time.time() < stop:
                if sum(g.queued for g in store.queue_groups("sim-model")) > 20 * JOB_SIZE:
                    time.sleep(0.01)
                    continue
                reqs = [NewRequest(f"r{i}", "/v1/completions", {"prompt": "p"})
                        for i in range(JOB_SIZE)]
                store.submit_job(NewJob(team="default", tier="batch", priority=40,
                                        model="sim-model", requests=reqs, max_attempts=3),
                                 now=time.time())

        def runner() -> None:
            r = store.register_runner(name="d", model="sim-model", pid=None, host="h",
                                      max_batch_size=BATCH, max_wait_ms=0, now=time.time())
            store.set_runner_state(r.id, RunnerState.IDLE, now=time.time())
            share = FairShareState()
            while time.time() < stop:
                t0 = time.perf_counter()
                decision, share = plan_batch(store.queue_groups("sim-model"), share, config,
                                             policy, now=time.time())
                got = (store.lease_batch(r.id, "sim-model", decision.picks, ttl_s=30,
                                         now=time.time())
                       if isinstance(decision, Dispatch) else None)
                if got is None:
                    time.sleep(0.005)
                    continue
                lat.append(time.perf_counter() - t0)
                now = time.time()
                store.complete(got[0].id, r.id, [RequestOutcome(q.id, text="ok",
                               finish_reason="stop", prompt_tokens=3, completion_tokens=4)
                               for q in got[1]], started_at=now, ended_at=now, now=now)
                done.append(len(got[1]))

        def reaper() -> None:
            # As the API's reaper does: expire leases and fold the queue summary each second.
            while time.time() < stop:
                store.expire_leases(now=time.time())
                time.sleep(1.0)

        threads = [threading.Thread(target=client), threading.Thread(target=reaper)] + [
            threading.Thread(target=runner) for _ in range(min(runners, 8))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        store.close()
    return {"completed_per_s": sum(done) / seconds,
            "lease_ms_p50": statistics.median(lat) * 1000 if lat else None,
            "lease_ms_p99": statistics.quantiles(lat, n=100)[98] * 1000 if len(lat) > 1
            else None}


def fresh_pg(admin: str) -> str:
    import psycopg

    name = f"stoker_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return admin.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runners", type=int, default=32)
    parser.add_argument("--rate", type=float, default=4000, help="client requests/s offered")
    parser.add_argument("--batch-ms", default="0,200",
                        help="how long simulated runners hold each batch (their decode time); "
                             "a run through the API per value")
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--replicas", type=int, default=2,
                        help="API replicas on PostgreSQL (SQLite always has one)")
    parser.add_argument("--postgres", default=os.environ.get(
        "STOKER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    report: dict[str, Any] = {"runners": args.runners, "batch": BATCH, "seconds": args.seconds}
    for kind in args.stores.split(","):
        replicas = args.replicas if kind == "postgresql" else 1
        report[kind] = {"api": []}
        for batch_ms in (float(x) for x in args.batch_ms.split(",")):
            url = fresh_pg(args.postgres) if kind == "postgresql" else None
            report[kind]["api"].append(through_api(url, args.seconds, args.runners, args.rate,
                                                   replicas, batch_ms / 1000))
        url = fresh_pg(args.postgres) if kind == "postgresql" else None
        report[kind]["direct"] = direct(url, args.seconds, args.runners)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
