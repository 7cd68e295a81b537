"""How the CLI calls Stoker's API: the shared options, one call with its errors turned into
one clear line, and a job printed or followed."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stoker.client import ApiError, StokerClient, default_server

out = Console()
err = Console(stderr=True)

ServerOpt = Annotated[str | None, typer.Option(
    "--server", help="Stoker URL (default $STOKER_SERVER, else http://127.0.0.1:8420); "
    "a runner takes several API replicas, comma-separated, and fails over between them")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="STOKER_TOKEN",
                     help="Bearer token of your team", show_envvar=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]


def api_client(server: str | None, token: str | None) -> StokerClient:
    """A client of the server named (else ``$STOKER_SERVER``, else the local default)."""
    return StokerClient(server or default_server(), token=token)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the exit (code 1) to raise."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(1)


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(value, indent=2) + "\n")


def wait_with_progress(client: StokerClient, job: dict[str, Any]) -> dict[str, Any]:
    """Wait for a job with a progress bar on stderr; returns the finished job."""
    total = job["request_counts"]["total"]
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err) as progress:
        task = progress.add_task(job["id"], total=total)

        def update(current: dict[str, Any]) -> None:
            progress.update(task, completed=current["request_counts"]["finished"],
                            description=f"{job['id']} {current['status']}")

        return client.wait(job["id"], on_progress=update, update_s=0.5)


T = TypeVar("T")


def ask(server: str | None, token: str | None, action: Callable[[StokerClient], T]) -> T:
    """Run one API call; a refusal becomes one clear line on stderr and exit code 1."""
    with api_client(server, token) as client:
        try:
            return action(client)
        except ApiError as exc:
            raise fail(exc.message) from None
        except httpx.HTTPError as exc:
            raise fail(f"cannot reach the Stoker server at {client.server} "
                        f"({type(exc).__name__}: {exc}); is it running, and is --server "
                        "(or $STOKER_SERVER) right?") from None


def emit_job(job: dict[str, Any], as_json: bool) -> None:
    """Print a job: JSON for scripts, else its status and counts."""
    if as_json:
        print_json(job)
        return
    c = job["request_counts"]
    out.print(f"[bold]{job['id']}[/bold]  {job['status']}  tier={job['tier']}  "
              f"model={job['model']}")
    out.print(f"  total {c['total']}  queued {c['queued']}  running {c['running']}  "
              f"succeeded {c['succeeded']}  failed {c['failed']}  cancelled {c['cancelled']}")
