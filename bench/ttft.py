"""Time to first streamed token of online requests while a 512-request batch job decodes.

Tiny model, one runner (``max_batch_size`` 16, ``online_headroom_rows`` 4): the batch job
fills the loop; then ``--online`` streamed chat completions are sent one after another, each
timed from sending it to its first content chunk. Target: p95 <= one decode step of the
loaded loop + 100 ms; the step is measured here too, on the same model at the same batch size
(median of the steps after prefill). Only requests answered while the batch job was still
running count.

    .venv/bin/python bench/ttft.py [--online 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from served import serve, stop
from stoker.client import StokerClient
from stoker.runner.backends.protocol import GenerationInput
from stoker.runner.backends.tiny_model import create_tiny_model
from stoker.runner.backends.transformers import TransformersBackend

BATCH = 16
HEADROOM = 4
BATCH_JOB = 512


def decode_step_s(backend: TransformersBackend, rows: int) -> float:
    """The median time of one decode step of a loop holding ``rows`` rows."""
    loop = backend.open_loop()
    for i in range(rows):
        loop.join(str(i), GenerationInput(prompt=f"Background request {i}:", max_tokens=60,
                                          temperature=1.0))
    loop.step()  # the prefill
    times = []
    for _ in range(40):
        start = time.perf_counter()
        loop.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def first_token_s(http: httpx.Client, i: int) -> float:
    """Send one streamed chat completion; seconds until its first content arrives. One
    client for all, as an application keeps one (a new one costs tens of ms to make)."""
    body = {"model": "default", "max_tokens": 8, "temperature": 1, "stream": True,
            "messages": [{"role": "user", "content": f"Online question {i}?"}]}
    start = time.perf_counter()
    with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        lines = reply.iter_lines()
        for line in lines:
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: "):])
            if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                elapsed = time.perf_counter() - start
                for _ in lines:  # read to the end, as a client would
                    pass
                return elapsed
    raise SystemExit(f"online request {i} streamed no content")


def measure(url: str, online: int) -> list[float]:
    lines = [{"custom_id": f"b{i}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "default", "prompt": f"Batch item {i}:", "max_tokens": 64,
                       "temperature": 1}} for i in range(BATCH_JOB)]
    with StokerClient(url) as client, httpx.Client(base_url=url, timeout=60) as http:
        first_token_s(http, -1)  # warm-up, not counted
        job = client.submit(lines, tier="batch", cache=False)
        while client.job(job["id"])["request_counts"]["succeeded"] == 0:
            time.sleep(0.05)  # the loop is full of batch rows from here on
        times = []
        for i in range(online):
            took = first_token_s(http, i)
            if client.job(job["id"])["status"] != "running":
                break  # the batch job is done: later requests would meet an idle runner
            times.append(took)
    if len(times) < online // 2:
        raise SystemExit(f"the batch job ended after {len(times)} online requests; "
                         "use fewer --online")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--online", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stoker-bench-") as tmp:
        workdir = Path(tmp)
        model_dir = create_tiny_model(workdir / "tiny-llama")
        step_s = decode_step_s(TransformersBackend(model_dir), BATCH + 1)
        proc, url = serve(workdir, {
            "data_dir": str(workdir / "data"),
            "models": {"tiny-llama": {"path": str(model_dir)}},
            "batching": {"max_batch_size": BATCH, "max_wait_ms": 50,
                         "online_headroom_rows": HEADROOM}})
        try:
            times = measure(url, args.online)
        finally:
            stop(proc)
    report(times, step_s, args)


def report(times: list[float], step_s: float, args: Any) -> None:
    ordered = sorted(times)
    p50 = statistics.median(ordered)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    target = step_s + 0.1
    result = {"requests": len(times), "p50_ms": p50 * 1000, "p95_ms": p95 * 1000,
              "decode_step_ms": step_s * 1000, "target_p95_ms": target * 1000,
              "met": p95 <= target}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"tiny model, a {BATCH_JOB}-request batch job decoding, {len(times)} online streams")
    print(f"  time to first token: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms")
    print(f"  one decode step at {BATCH + 1} rows: {step_s * 1000:.1f} ms; target p95 <= "
          f"{target * 1000:.0f} ms: {'met' if result['met'] else 'NOT met'}")


if __name__ == "__main__":
    main()
