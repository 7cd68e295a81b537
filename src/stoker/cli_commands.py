"""`stoker command`: run a command on a lent accelerator, and read its logs."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from stoker.cli_api import JsonOpt, ServerOpt, TokenOpt, ask, emit_job, fail, print_json
from stoker.client import StokerClient

command_app = typer.Typer(help="Command jobs: research and training work on lent "
                               "accelerators, with a checkpoint contract.",
                          no_args_is_help=True)


def _variables(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise fail(f"--env {pair!r}: write NAME=VALUE")
        env[name] = value
    return env


@command_app.command("run", context_settings={"allow_interspersed_args": False})
def run_command(
    argv: Annotated[list[str], typer.Argument(help="the command and its arguments (after --)")],
    model: Annotated[str | None, typer.Option(
        "--model", help="whose runners lend their accelerator (default: the server's)")]
        = None,
    tier: Annotated[str | None, typer.Option("--tier", help="a tier below online")] = None,
    env: Annotated[list[str] | None, typer.Option(
        "--env", help="NAME=VALUE for the command; repeat for more")] = None,
    grace_s: Annotated[float | None, typer.Option(
        "--grace-s", help="seconds from SIGTERM to SIGKILL when it is stopped")] = None,
    max_run_s: Annotated[float | None, typer.Option(
        "--max-run-s", help="a run past this is killed and the job fails")] = None,
    idempotency_key: Annotated[str | None, typer.Option("--idempotency-key")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="wait for it to finish")] = False,
    server: ServerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False,
) -> None:
    """Run a command on a lent accelerator. It resumes from $STOKER_CHECKPOINT_DIR when it is
    reclaimed and requeued; `stoker command logs JOB` shows its output."""
    variables = _variables(env or [])

    def submit(client: StokerClient) -> dict[str, Any]:
        job = client.submit_command(argv, model=model, tier=tier, env=variables,
                                    grace_s=grace_s, max_run_s=max_run_s,
                                    idempotency_key=idempotency_key)
        return client.wait(job["id"], update_s=5.0) if wait else job

    job = ask(server, token, submit)
    emit_job(job, as_json)
    if wait and job["request_counts"]["succeeded"] != 1:
        raise typer.Exit(1)


@command_app.command("logs")
def command_logs(job_id: str, server: ServerOpt = None, token: TokenOpt = None,
                 as_json: JsonOpt = False) -> None:
    """A command job's output so far, run by run."""
    text = ask(server, token, lambda c: c.logs(job_id))
    if as_json:
        print_json({"job_id": job_id, "logs": text})
        return
    sys.stdout.write(text)
