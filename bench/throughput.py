"""Generated tokens/s on the tiny model: the backend in batches of 16, one request at a time,
and through Stoker (server + one runner, max_batch_size 16, 256 requests submitted at once).

Targets on a 2-core machine: through Stoker >= 0.85 x batched backend and >= 5 x one at a time.
The three are measured in one run, interleaved over several rounds, and medians are reported;
through Stoker is timed from the submission to the last result fetched, with the result cache
off (every round asks the same prompts).

    .venv/bin/python bench/throughput.py [--rounds 3] [--max-tokens 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from served import serve, stop
from stoker.client import StokerClient
from stoker.runner.backends.protocol import GenerationInput
from stoker.runner.backends.tiny_model import create_tiny_model
from stoker.runner.backends.transformers import TransformersBackend

BATCH = 16
REQUESTS = 256
SINGLE_REQUESTS = 32


def prompt(i: int) -> str:
    return f"Request {i}: write one line about warm GPU pools and batching number {i % 7}."


def backend_batched(backend: TransformersBackend, max_tokens: int) -> float:
    specs = [GenerationInput(prompt=prompt(i), max_tokens=max_tokens, temperature=0.0)
             for i in range(REQUESTS)]
    start = time.perf_counter()
    tokens = 0
    for at in range(0, REQUESTS, BATCH):
        tokens += sum(o.completion_tokens for o in backend.generate(specs[at:at + BATCH]))
    return tokens / (time.perf_counter() - start)


def backend_single(backend: TransformersBackend, max_tokens: int) -> float:
    start = time.perf_counter()
    tokens = 0
    for i in range(SINGLE_REQUESTS):
        spec = GenerationInput(prompt=prompt(i), max_tokens=max_tokens, temperature=0.0)
        tokens += backend.generate([spec])[0].completion_tokens
    return tokens / (time.perf_counter() - start)


def through_stoker(client: StokerClient, max_tokens: int, n: int = REQUESTS) -> float:
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/completions",
              "body": {"model": "default", "prompt": prompt(i), "max_tokens": max_tokens,
                       "temperature": 0}} for i in range(n)]
    start = time.perf_counter()
    # No result cache: the prompts repeat from round to round, and the cache would answer
    # them without a forward pass (what is measured here is generation).
    job = client.submit(lines, tier="batch", cache=False)
    client.wait(job["id"])
    results = client.results(job["id"])  # fetched: part of the time, as a client's would be
    elapsed = time.perf_counter() - start
    if any(x["cached"] for x in results):
        raise SystemExit("a result came from the cache: the benchmark would not measure "
                         "generation")
    tokens = sum(x["response"]["body"]["usage"]["completion_tokens"] for x in results)
    return tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stoker-bench-") as tmp:
        workdir = Path(tmp)
        model_dir = create_tiny_model(workdir / "tiny-llama")
        backend = TransformersBackend(model_dir)
        proc, url = serve(workdir, {
            "data_dir": str(workdir / "data"),
            "models": {"tiny-llama": {"path": str(model_dir)}},
            "batching": {"max_batch_size": BATCH, "max_wait_ms": 50}})
        runs: dict[str, list[float]] = {"batched": [], "single": [], "stoker": []}
        try:
            with StokerClient(url) as client:
                through_stoker(client, args.max_tokens, n=BATCH)  # warm-up
                backend_batched(backend, 4)
                for _ in range(args.rounds):
                    runs["batched"].append(backend_batched(backend, args.max_tokens))
                    runs["single"].append(backend_single(backend, args.max_tokens))
                    runs["stoker"].append(through_stoker(client, args.max_tokens))
        finally:
            stop(proc)
    report(runs, args)


def report(runs: dict[str, list[float]], args: Any) -> None:
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {
        "tokens_per_s_median": med,
        "runs": runs,
        "stoker_over_batched": med["stoker"] / med["batched"],
        "stoker_over_single": med["stoker"] / med["single"],
        "rounds": args.rounds,
        "max_tokens": args.max_tokens,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"tiny model, {args.max_tokens} new tokens per request, median of {args.rounds} rounds")
    print(f"  (a) backend, batches of {BATCH}:        {med['batched']:8.0f} tok/s")
    print(f"  (b) backend, one request at a time:  {med['single']:8.0f} tok/s")
    print(f"  (c) through Stoker, {REQUESTS} at once:     {med['stoker']:8.0f} tok/s")
    print(f"  (c)/(a) = {result['stoker_over_batched']:.2f}  (target >= 0.85)")
    print(f"  (c)/(b) = {result['stoker_over_single']:.2f}  (target >= 5)")


if __name__ == "__main__":
    main()
