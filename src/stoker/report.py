"""`stoker report`: the cost report and waste findings as terminal tables or Markdown (for a
pull-request comment), from ``/api/cost`` and ``/api/waste``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table


def usd(value: float | None) -> str:
    """Dollars with enough digits for sub-cent jobs."""
    if value is None:
        return "–"
    sign, size = "-" if value < 0 else "", abs(value)
    if size >= 1:
        return f"{sign}${size:,.2f}"
    return f"{sign}${size:.4f}" if size >= 0.01 or size == 0 else f"{sign}${size:.6f}"


def seconds(value: float | None) -> str:
    """A duration for people."""
    if value is None:
        return "–"
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


JOB_COLUMNS = ("job", "team", "tier", "requests", "tokens", "wait", "run", "direct", "loaded",
               "cold x1", "saving")


def job_cells(job: dict[str, Any]) -> list[str]:
    """One job's row."""
    return [job["job_id"], job["team"], job["tier"], str(job["requests"]),
            str(job["prompt_tokens"] + job["completion_tokens"]), seconds(job["queue_wait_s"]),
            seconds(job["run_time_s"]), usd(job["direct_cost_usd"]), usd(job["loaded_cost_usd"]),
            usd(job["counterfactual_cost_usd"]), usd(job["saving_usd"])]


def summary_line(cost: dict[str, Any]) -> str:
    """Window, total, attributed and unattributed cost in one line."""
    t = cost["totals"]
    return (f"{_when(cost['since'])} – {_when(cost['until'])}: runners cost "
            f"{usd(t['cost_usd'])} ({t['gpu_s']:.0f} runner-seconds); jobs carry "
            f"{usd(t['attributed_cost_usd'])}, unattributed {usd(t['unattributed_cost_usd'])}")


def tables(cost: dict[str, Any], waste: dict[str, Any], *, limit: int) -> Group:
    """Rich tables: jobs, teams, pools, findings."""
    jobs = Table(*JOB_COLUMNS, title="Cost per job (most expensive first; cold x1: the same "
                 "work one request at a time on a cold machine of the same class)")
    for job in sorted(cost["jobs"], key=lambda j: -j["loaded_cost_usd"])[:limit]:
        jobs.add_row(*job_cells(job))
    teams = Table("team", "jobs", "requests", "direct", "loaded", "cold x1",
                  title="Cost per team")
    for team, row in cost["by_team"].items():
        teams.add_row(team, f"{row['jobs']:.0f}", f"{row['requests']:.0f}",
                      usd(row["direct_cost_usd"]), usd(row["loaded_cost_usd"]),
                      usd(row["counterfactual_cost_usd"]))
    pools = Table("model", "starting", "idle", "busy", "draining", "utilization",
                  title="Pools")
    for pool in cost["pools"]:
        by = pool["seconds_by_state"]
        pools.add_row(pool["model"], *(seconds(by.get(s, 0.0)) for s in
                                       ("starting", "idle", "busy", "draining")),
                      f"{pool['utilization']:.0%}")
    findings = Table("waste", "finding", "what to change", title="Waste findings")
    for f in waste["findings"]:
        findings.add_row(usd(f["waste_usd"]), f["summary"], f["advice"])
    return Group(summary_line(cost), jobs, teams, pools, findings)


def markdown(cost: dict[str, Any], waste: dict[str, Any], *, limit: int) -> str:
    """The same report as Markdown."""
    lines = ["## Stoker cost report", "", summary_line(cost) + ".", "",
             "| " + " | ".join(JOB_COLUMNS) + " |", "|" + "---|" * len(JOB_COLUMNS)]
    for job in sorted(cost["jobs"], key=lambda j: -j["loaded_cost_usd"])[:limit]:
        lines.append("| " + " | ".join(f"`{c}`" if i == 0 else c
                                       for i, c in enumerate(job_cells(job))) + " |")
    lines += ["", "| team | jobs | direct | loaded |", "|---|---|---|---|"]
    for team, row in cost["by_team"].items():
        lines.append(f"| {team} | {row['jobs']:.0f} | {usd(row['direct_cost_usd'])} | "
                     f"{usd(row['loaded_cost_usd'])} |")
    lines += ["", "### Waste findings", ""]
    lines += [f"- **{usd(f['waste_usd'])}** — {f['summary']}. *{f['advice']}*"
              for f in waste["findings"]] or ["No waste found in this window."]
    return "\n".join(lines) + "\n"
