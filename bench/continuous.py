"""Continuous against static batching with SmolLM2-135M-Instruct on the CPU.

128 chat prompts, greedy, ``max_tokens`` drawn uniformly from 8..256 (seeded), batches of at
most 16; generated tokens per second of:

  (a) Stoker, continuous batching: server + one runner, the job submitted at once, timed from
      the submission to the last result fetched;
  (b) the same Stoker with static batching (``batching.continuous: false``);
  (c) the backend driven directly with the same continuous loop (no server, no queue);
  (d) the backend one request at a time (on the first ``--single`` prompts: it is slow).

Targets: (a) >= 1.4 x (b), (a) >= 5 x (d), (a) >= 0.85 x (c). All four run in one sitting,
in each round (in a different order each round), so the ratios compare like with like on a
shared machine; the result cache is off (every round asks the same prompts); a warm-up pass
of every prompt through every setup (16 tokens each) is not timed.

The weights are bfloat16 in all four (``--dtype float32`` for the checkpoint's own type).

    .venv/bin/python bench/continuous.py [--rounds 2] [--prompts 128] [--single 12] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from served import serve, stop
from stoker.client import StokerClient
from stoker.runner.backends.gguf_import import import_gguf, packaged_smollm2_gguf
from stoker.runner.backends.protocol import ChatMessage, GenerationInput
from stoker.runner.backends.transformers import TransformersBackend

BATCH = 16
TOPICS = ["the sea", "a lighthouse keeper", "graphics processors", "a long train journey",
          "the history of bread", "a city at night", "learning the violin", "a mountain storm"]


def workload(n: int, seed: int = 7) -> list[tuple[str, int]]:
    """The prompts and their token budgets (uniform in 8..256)."""
    rng = random.Random(seed)
    return [(f"Write a detailed story about {TOPICS[i % len(TOPICS)]} (number {i}).",
             rng.randint(8, 256)) for i in range(n)]


def spec(text: str, max_tokens: int) -> GenerationInput:
    return GenerationInput(messages=(ChatMessage("user", text),), max_tokens=max_tokens,
                           temperature=0.0)


def direct_continuous(backend: TransformersBackend, work: list[tuple[str, int]]) -> float:
    """(c): one loop kept at BATCH rows, refilled as rows finish."""
    loop = backend.open_loop()
    pending = list(enumerate(work))
    tokens = 0
    start = time.perf_counter()
    while pending or loop.in_flight:
        while pending and loop.in_flight < BATCH:
            i, (text, budget) = pending.pop(0)
            loop.join(str(i), spec(text, budget))
        tokens += sum(out.completion_tokens for _, out in loop.step())
    return tokens / (time.perf_counter() - start)


def one_at_a_time(backend: TransformersBackend, work: list[tuple[str, int]]) -> float:
    """(d)."""
    start = time.perf_counter()
    tokens = sum(backend.generate([spec(t, n)])[0].completion_tokens for t, n in work)
    return tokens / (time.perf_counter() - start)


def through_stoker(url: str, work: list[tuple[str, int]]) -> float:
    """(a) or (b): the whole job through the server, to the last result fetched."""
    lines = [{"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "default", "max_tokens": budget, "temperature": 0,
                       "messages": [{"role": "user", "content": text}]}}
             for i, (text, budget) in enumerate(work)]
    with StokerClient(url) as client:
        start = time.perf_counter()
        job = client.submit(lines, tier="batch", cache=False)
        client.wait(job["id"], timeout_s=3600)
        results = client.results(job["id"])
        elapsed = time.perf_counter() - start
    if any(x["cached"] for x in results):
        raise SystemExit("a result came from the cache: nothing would be measured")
    return sum(x["response"]["body"]["usage"]["completion_tokens"] for x in results) / elapsed


def run_one(name: str, servers: dict[bool, tuple[subprocess.Popen[bytes], str]],
            backend: TransformersBackend, work: list[tuple[str, int]], single: int) -> float:
    """One timed run of the setup ``name``: tokens/s."""
    if name in ("continuous", "static"):
        return through_stoker(servers[name == "continuous"][1], work)
    if name == "direct":
        return direct_continuous(backend, work)
    return one_at_a_time(backend, work[:single])


def start_server(workdir: Path, model_dir: Path, dtype: str, *, continuous: bool
                 ) -> tuple[subprocess.Popen[bytes], str]:
    name = "continuous" if continuous else "static"
    return serve(workdir, {
        "data_dir": str(workdir / name), "default_model": "smollm2",
        "models": {"smollm2": {"path": str(model_dir), "load_dtype": dtype}},
        "batching": {"max_batch_size": BATCH, "max_wait_ms": 50, "continuous": continuous,
                     "online_headroom_rows": 0},
    }, name=name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=128)
    parser.add_argument("--single", type=int, default=12)
    parser.add_argument("--dtype", default="bfloat16",
                        choices=["float32", "bfloat16"], help="the weights' type, everywhere")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = workload(args.prompts)
    runs: dict[str, list[float]] = {"continuous": [], "static": [], "direct": [], "single": []}
    with tempfile.TemporaryDirectory(prefix="stoker-bench-") as tmp:
        workdir = Path(tmp)
        model_dir = import_gguf(packaged_smollm2_gguf(), workdir / "smollm2")
        backend = TransformersBackend(model_dir, dtype=args.dtype)
        servers = {c: start_server(workdir, model_dir, args.dtype, continuous=c)
                   for c in (True, False)}
        try:
            # Not timed: every prompt once, short, in each setup, so the kernels for each
            # shape the runs meet (bfloat16 ones are made on first use) exist before timing.
            warm = [(text, 16) for text, _ in work]
            for _, url in servers.values():
                through_stoker(url, warm)
            direct_continuous(backend, warm)
            one_at_a_time(backend, warm[:2])
            for round_ in range(args.rounds):
                # Each round in another order, so no setup always runs first or last.
                order = ["continuous", "static", "direct", "single"]
                for name in order[round_ % 4:] + order[:round_ % 4]:
                    runs[name].append(run_one(name, servers, backend, work, args.single))
        finally:
            for proc, _ in servers.values():
                stop(proc)
    report(runs, args)


def report(runs: dict[str, list[float]], args: Any) -> None:
    med = {k: statistics.median(v) for k, v in runs.items()}
    result = {"tokens_per_s_median": med, "runs": runs, "rounds": args.rounds,
              "prompts": args.prompts, "dtype": args.dtype,
              "continuous_over_static": med["continuous"] / med["static"],
              "continuous_over_single": med["continuous"] / med["single"],
              "continuous_over_direct": med["continuous"] / med["direct"]}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"SmolLM2-135M-Instruct ({args.dtype}), {args.prompts} chat prompts, max_tokens "
          f"8..256, batches of {BATCH}, median of {args.rounds} rounds")
    print(f"  (a) Stoker, continuous batching:    {med['continuous']:7.1f} tok/s")
    print(f"  (b) Stoker, static batching:        {med['static']:7.1f} tok/s")
    print(f"  (c) backend, same continuous loop:  {med['direct']:7.1f} tok/s")
    print(f"  (d) backend, one at a time:         {med['single']:7.1f} tok/s")
    print(f"  (a)/(b) = {result['continuous_over_static']:.2f}  (target >= 1.4)")
    print(f"  (a)/(d) = {result['continuous_over_single']:.2f}  (target >= 5)")
    print(f"  (a)/(c) = {result['continuous_over_direct']:.2f}  (target >= 0.85)")


if __name__ == "__main__":
    main()
