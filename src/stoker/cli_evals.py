"""`stoker eval run`: a suite as one job, scored, compared with its baseline, gated, reported.

Exit codes: 0 the gate passed; 1 it failed (a regression, or a pass rate under the minimum);
2 the suite or the options are wrong; 3 a newer commit's run superseded this one (no verdict);
4 the run could not be made (server unreachable, a job that failed, no baseline).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from stoker.client import ApiError, StokerClient, default_server
from stoker.evals.baseline import BaselineNotFound, load_baseline
from stoker.evals.ci import CiIdentity, ci_identity
from stoker.evals.report import RunInfo, markdown, report_json
from stoker.evals.run import run_suite
from stoker.evals.suite import Suite, SuiteError, load_suite
from stoker.evals.targets import EndpointTarget, StokerTarget, Submitted, Superseded, Target

eval_app = typer.Typer(help="Eval suites: run, score, gate, report.", no_args_is_help=True)
err = Console(stderr=True)

GATE_FAILED, BAD_SUITE, SUPERSEDED, NO_RUN = 1, 2, 3, 4


@eval_app.command("run")
def run(
    suite_path: Annotated[Path, typer.Argument(metavar="SUITE", help="the suite's YAML file")],
    tier: Annotated[str | None, typer.Option(help="tier to run in (default: the suite's)")]
    = None,
    baseline: Annotated[str | None, typer.Option(
        help="a JSON report file, or a stored run's name or commit")] = None,
    name: Annotated[str | None, typer.Option(
        help="name this run (a later run's --baseline may name it)")] = None,
    model: Annotated[str | None, typer.Option(help="model (default: the suite's)")] = None,
    report: Annotated[Path, typer.Option(help="Markdown report file")]
    = Path("stoker-eval.md"),
    json_report: Annotated[Path, typer.Option("--json-report", help="JSON report file")]
    = Path("stoker-eval.json"),
    endpoint: Annotated[str | None, typer.Option(
        help="run against this OpenAI-compatible API (…/v1) instead of Stoker")] = None,
    endpoint_key_env: Annotated[str, typer.Option(
        help="the variable holding --endpoint's API key")] = "OPENAI_API_KEY",
    server: Annotated[str | None, typer.Option(help="Stoker URL (default $STOKER_SERVER)")]
    = None,
    token: Annotated[str | None, typer.Option(envvar="STOKER_TOKEN", show_envvar=True,
                                              help="your team's token")] = None,
    timeout_s: Annotated[float, typer.Option(help="give up waiting after this")] = 3600.0,
    callback_url: Annotated[str | None, typer.Option(
        help="POSTed the cases' job when it finishes, signed with your team's secret")]
    = None,
    wait: Annotated[bool, typer.Option(
        "--wait/--no-wait", help="wait for the run and score it (else submit and exit)")]
    = True,
) -> None:
    """Run SUITE as one job, score it, compare it with --baseline and write the reports
    (Markdown also to $GITHUB_STEP_SUMMARY when set). Exits 1 when the gate fails."""
    try:
        suite = load_suite(suite_path)
    except SuiteError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(BAD_SUITE) from None
    if endpoint and not wait:
        err.print("[red]error:[/red] --no-wait needs Stoker (an --endpoint answers as it goes)")
        raise typer.Exit(BAD_SUITE)
    suite = suite.model_copy(update={"model": model or suite.model, "tier": tier or suite.tier})
    client = None if endpoint else StokerClient(server or default_server(), token=token)
    who = ci_identity(os.environ)
    started = time.monotonic()
    try:
        target, judge_for_baseline = _targets(suite, client, who, name, endpoint,
                                              endpoint_key_env, timeout_s)
        if isinstance(target, StokerTarget):
            target.callback_url, target.wait = callback_url, wait
        results = run_suite(suite, target)
        base = (load_baseline(baseline, suite, client, judge_for_baseline)
                if baseline else None)
    except Submitted as exc:
        # In CI, a later waiting run of the same commit finds this job by its idempotency key.
        typer.echo(exc.job["id"])
        err.print(f"{suite.name}: {escape(str(exc))}; not waiting, no report")
        return
    except Superseded as exc:
        err.print(f"[yellow]superseded:[/yellow] {escape(str(exc))}; no verdict")
        raise typer.Exit(SUPERSEDED) from None
    except (ApiError, BaselineNotFound, TimeoutError, OSError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(NO_RUN) from None
    info = _run_info(target, client, who, name, endpoint, time.monotonic() - started)
    found = report_json(suite, results, info, base)
    _write_reports(found, report, json_report)
    verdict = "[green]passed[/green]" if found["gate"]["passed"] else "[red]failed[/red]"
    err.print(f"{suite.name}: {found['passed']}/{found['samples']} passed "
              f"({found['pass_rate']:.1%}); gate {verdict}; report {report}")
    if not found["gate"]["passed"]:
        for reason in found["gate"]["reasons"]:
            err.print(f"  {escape(reason)}")
        raise typer.Exit(GATE_FAILED)


def _targets(suite: Suite, client: StokerClient | None, who: CiIdentity, name: str | None,
             endpoint: str | None, key_env: str, timeout_s: float
             ) -> tuple[Target, Target | None]:
    """The target that runs the suite, and the one that judges a stored baseline's answers."""
    if endpoint:
        direct = EndpointTarget(endpoint, os.environ.get(key_env))
        return direct, direct
    assert client is not None
    metadata = {"eval_suite": suite.name, **({"eval_name": name} if name else {}),
                **({"eval_commit": who.commit} if who.commit else {})}
    progress = _progress_printer()
    target = StokerTarget(client, suite.tier, metadata,
                          idempotency_key=who.idempotency_key(suite.name, suite.tier),
                          concurrency_group=who.concurrency_group(suite.name),
                          on_progress=progress, timeout_s=timeout_s)
    judge = StokerTarget(client, suite.tier, {"eval_suite": suite.name},
                         on_progress=progress, timeout_s=timeout_s)
    return target, judge


def _progress_printer() -> Any:
    def show(job: dict[str, Any]) -> None:
        c = job["request_counts"]
        err.print(f"  {job['id']}: {job['status']}, {c['finished']}/{c['total']} done",
                  highlight=False)
    return show


def _run_info(target: Target, client: StokerClient | None, who: CiIdentity,
              name: str | None, endpoint: str | None, duration_s: float) -> RunInfo:
    if not isinstance(target, StokerTarget) or client is None:
        return RunInfo(name, who.commit, endpoint or "endpoint", (), duration_s, None)
    ids = tuple(j["id"] for j in target.jobs)
    return RunInfo(name, who.commit, client.server, ids, duration_s, _cost(client, target))


def _cost(client: StokerClient, target: StokerTarget) -> float | None:
    """The direct cost of the run's jobs, as Stoker accounts it (None if it cannot say)."""
    if not target.jobs:
        return None
    since = min(float(j["created_at"]) for j in target.jobs) - 1
    try:
        rows = client.cost(since=since)["jobs"]
    except ApiError:
        return None
    ids = {j["id"] for j in target.jobs}
    return float(sum(r["direct_cost_usd"] for r in rows if r["job_id"] in ids))


def _write_reports(found: dict[str, Any], report: Path, json_report: Path) -> None:
    text = markdown(found)
    report.write_text(text, encoding="utf-8")
    json_report.write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as out:
            out.write(text)
