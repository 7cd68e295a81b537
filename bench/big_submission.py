"""A big submission must not stall the service, and big downloads must stream.

Against `stoker serve` (SQLite, the tiny model, one runner):
(a) while one client uploads a 100,000-line JSONL job (~20 MB), another polls /healthz and a
    third makes online /v1/completions calls back to back: their latencies (p50/p99) and the
    server's peak memory (with its upload-validating child's) above its resting size,
    against the file's size; then, for
    reference, online latencies while the runner works through that job (``online_after``);
(b) a results download of a job of --download-lines lines (stored directly, as bench/pick.py
    fills its queue, since running a million requests is not what is measured): the server's
    peak memory above rest while it streams, for that job and one a tenth its size.

    .venv/bin/python bench/big_submission.py [--lines 100000] [--download-lines 1000000] [--json]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]   # PostgreSQL, not SQLite
        [--static-batching]   # runners with batching.continuous off
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from stoker.runner.backends.tiny_model import create_tiny_model
from stoker.store import NewJob, NewRequest
from stoker.store.sqlite import SQLiteStore

MODEL = "tiny-llama"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jsonl(lines: int) -> bytes:
    """About 200 bytes a line, as an eval or pipeline line is."""
    return b"".join(json.dumps({
        "custom_id": f"req-{i:07d}", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": MODEL, "max_tokens": 8, "temperature": 0,
                 "messages": [{"role": "user",
                               "content": f"Question {i}: name one reason to batch prompts on "
                                          f"a warm GPU, in a few words."}]}}).encode() + b"\n"
        for i in range(lines))


def upload_worker_pid(server_pid: int) -> int | None:
    """The server's upload-validating child process (part of the server's memory)."""
    for entry in Path(f"/proc/{server_pid}/task").glob("*/children"):
        for pid in entry.read_text().split():
            with contextlib.suppress(OSError):
                if b"stoker.api.upload_worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return int(pid)
    return None


def rss_kb(pid: int) -> int:
    """Resident memory of the server and its upload worker, together."""
    total = 0
    for each in (pid, upload_worker_pid(pid)):
        if each is None:
            continue
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


class Sampler(threading.Thread):
    """Samples the server's resident memory until stopped; keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kb, self._done = pid, rss_kb(pid), threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak_kb = max(self.peak_kb, rss_kb(self.pid))

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak_kb


def poll(url: str, stop: threading.Event, out: list[float], **call: Any) -> None:
    """Call ``url`` back to back until ``stop``, recording each latency in ms."""
    with httpx.Client(timeout=60) as client:
        while not stop.is_set():
            t0 = time.perf_counter()
            r = client.request(url=url, **call)
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
            stop.wait(0.02)


def pct(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100)[q - 1], 1) if len(values) > 1 else \
        (values[0] if values else float("nan"))


@contextlib.contextmanager
def database(admin_url: str | None) -> Iterator[str | None]:
    """A fresh PostgreSQL database for the run (dropped after), or None for SQLite."""
    if admin_url is None:
        yield None
        return
    import psycopg

    name = f"stoker_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (name,))
            admin.execute(f"DROP DATABASE IF EXISTS {name}")


def start_server(root: Path, port: int, runners: int, store: str | None = None,
                 continuous: bool = True) -> subprocess.Popen[bytes]:
    config = {"port": port, "data_dir": str(root), "models": {MODEL: {"path": str(root / "m")}},
              "limits": {"max_requests_per_job": 2_000_000, "max_body_bytes": 512 * 2**20},
              "batching": {"max_batch_size": 16, "max_wait_ms": 5, "continuous": continuous},
              **({"store": store} if store else {})}
    (root / "stoker.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.Popen([sys.executable, "-m", "stoker.cli", "serve", "--config",
                             str(root / "stoker.yaml"), "--runners", str(runners)],
                            stdout=(root / "serve.log").open("ab"), stderr=subprocess.STDOUT,
                            cwd=root)
    deadline = time.monotonic() + 120
    worker_deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            runners_up = httpx.get(f"http://127.0.0.1:{port}/api/runners", timeout=2).json()
            idle = len([r for r in runners_up["data"] if r["state"] == "idle"])
            # The upload worker starts with the server (a build from before it had none).
            if idle >= runners and (upload_worker_pid(proc.pid) is not None
                                    or time.monotonic() > worker_deadline):
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("serve did not start")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def submission(root: Path, lines: int, store: str | None,
               continuous: bool = True) -> dict[str, Any]:
    port = free_port()
    body = jsonl(lines)
    proc = start_server(root, port, runners=1, store=store, continuous=continuous)
    url = f"http://127.0.0.1:{port}"
    try:
        rest_kb = rss_kb(proc.pid)
        health: list[float] = []
        online: list[float] = []
        stop = threading.Event()
        pollers = [
            threading.Thread(target=poll, args=(f"{url}/healthz", stop, health),
                             kwargs={"method": "GET"}),
            threading.Thread(target=poll, args=(f"{url}/v1/completions", stop, online),
                             kwargs={"method": "POST", "json": {
                                 "model": MODEL, "prompt": "hi", "max_tokens": 2,
                                 "temperature": 0}}),
        ]
        for t in pollers:
            t.start()
        time.sleep(1.0)  # the pollers' first calls, before the upload starts
        sampler = Sampler(proc.pid)
        sampler.start()
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/api/jobs?cache=false", content=body, timeout=600,
                       headers={"Content-Type": "application/jsonl"})
        upload_s = time.perf_counter() - t0
        peak_kb = sampler.stop()
        stop.set()
        for t in pollers:
            t.join()
        assert r.status_code == 201, r.text[:300]
        # For reference: online calls while the runner works through the job (an online call
        # waits for the batch in flight, submission or not).
        after: list[float] = []
        stop_after = threading.Event()
        poller = threading.Thread(target=poll, args=(f"{url}/v1/completions", stop_after, after),
                                  kwargs={"method": "POST", "json": {
                                      "model": MODEL, "prompt": "hi", "max_tokens": 2,
                                      "temperature": 0}})
        poller.start()
        stop_after.wait(min(10.0, max(upload_s, 3.0)))
        stop_after.set()
        poller.join()
        return {"lines": lines, "file_mb": round(len(body) / 2**20, 1),
                "upload_s": round(upload_s, 2),
                "healthz_ms_p50": pct(health, 50), "healthz_ms_p99": pct(health, 99),
                "healthz_calls": len(health),
                "online_ms_p50": pct(online, 50), "online_ms_p99": pct(online, 99),
                "online_calls": len(online),
                "online_after_ms_p50": pct(after, 50), "online_after_ms_p99": pct(after, 99),
                "server_growth_mb": round((peak_kb - rest_kb) / 1024, 1),
                "growth_over_file": round((peak_kb - rest_kb) * 1024 / len(body), 2)}
    finally:
        stop_server(proc)


def fill_job(root: Path, lines: int, url: str | None) -> str:
    store: Any
    if url is None:
        store = SQLiteStore(root / "stoker.db")
    else:
        from stoker.store.postgres import PostgresStore

        store = PostgresStore(url)
    try:
        requests = [NewRequest(f"req-{i:07d}", "/v1/completions",
                               {"model": MODEL, "prompt": f"p{i}", "max_tokens": 8})
                    for i in range(lines)]
        job = store.submit_job(NewJob(team="default", tier="batch", priority=40, model=MODEL,
                                      requests=requests, max_attempts=3), now=time.time())
        store.cancel_job(job.job.id, now=time.time())  # every line then has a result line
        return job.job.id
    finally:
        store.close()


def download(root: Path, lines: int, store: str | None) -> dict[str, Any]:
    job_id = fill_job(root, lines, store)
    port = free_port()
    proc = start_server(root, port, runners=0, store=store)
    try:
        rest_kb = rss_kb(proc.pid)
        sampler = Sampler(proc.pid)
        sampler.start()
        got, t0 = 0, time.perf_counter()
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/jobs/{job_id}/results",
                          timeout=600) as r:
            for _ in r.iter_lines():
                got += 1
        seconds = time.perf_counter() - t0
        peak_kb = sampler.stop()
        assert got == lines, (got, lines)
        return {"lines": lines, "seconds": round(seconds, 1),
                "server_growth_mb": round((peak_kb - rest_kb) / 1024, 1)}
    finally:
        stop_server(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--download-lines", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--static-batching", action="store_true",
                        help="runners with batching.continuous off (the lease-run-complete path)")
    parser.add_argument("--no-download", action="store_true", help="the submission part only")
    parser.add_argument("--postgres", metavar="ADMIN_URL", default=None,
                        help="run on PostgreSQL (a fresh database per part) instead of SQLite")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="stoker-big-") as tmp:
        root = Path(tmp) / "submit"
        root.mkdir()
        create_tiny_model(root / "m")
        with database(args.postgres) as url:
            results["submission"] = submission(root, args.lines, url,
                                                continuous=not args.static_batching)
        for n in () if args.no_download else (args.download_lines // 10,
                                               args.download_lines):
            where = Path(tmp) / f"download-{n}"
            where.mkdir()
            (where / "m").symlink_to(root / "m")
            with database(args.postgres) as url:
                results[f"download_{n}"] = download(where, n, url)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, figures in results.items():
        print(name, " ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
