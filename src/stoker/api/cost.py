"""What work cost: ``/api/cost``, ``/api/waste`` and the dashboard's data, from the records.

A team's token sees its own jobs (and the shared pools); the operator token, or any caller
when no teams are configured, sees every team.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from stoker.accounting.view import CostView, cost_view, finding_json, report_json
from stoker.api import access
from stoker.api.pool import decision_json
from stoker.api.render import runner_json
from stoker.api.services import Services, bearer_matches, client_team, services
from stoker.core.model import RunnerState
from stoker.errors import Unprocessable

router = APIRouter(prefix="/api", tags=["cost"],
                   dependencies=[Depends(access.viewer)])


def cost_scope(request: Request, svc: Services) -> str | None:
    """The one team the caller may see, or None for all of them."""
    if not svc.teams.configured:
        return None
    expected = svc.settings.operator_token
    if expected is not None and bearer_matches(request, expected.get_secret_value()):
        return None
    return client_team(request)


def window(svc: Services, since: float | None, until: float | None,
           hours: float | None) -> tuple[float, float]:
    """``[since, until)`` from the query, defaulting to the last ``default_window_h`` hours."""
    end = until if until is not None else svc.clock.now()
    span_h = hours if hours is not None else svc.settings.accounting.default_window_h
    start = since if since is not None else end - span_h * 3600
    if start >= end:
        raise Unprocessable(f"since ({start}) must be before until ({end})")
    return start, end


async def _view(svc: Services, since: float | None, until: float | None,
                hours: float | None) -> CostView:
    start, end = window(svc, since, until, hours)
    return await run_in_threadpool(cost_view, svc.store, svc.settings, since=start, until=end)


Since = Query(None, description="window start (unix seconds)")
Until = Query(None, description="window end (unix seconds; default now)")
Hours = Query(None, gt=0, le=24 * 366, description="window length when since is left out")


@router.get("/cost")
async def cost(request: Request, team: str | None = None, tier: str | None = None,
               model: str | None = None, since: float | None = Since,
               until: float | None = Until, hours: float | None = Hours,
               svc: Services = Depends(services)) -> dict[str, Any]:
    """Cost per job (direct and loaded, counterfactual and saving), per team, tier, model and
    day, the pools' time by state, and the attributed and unattributed totals."""
    scope = cost_scope(request, svc)
    view = await _view(svc, since, until, hours)
    return report_json(view, team=scope or team, tier=tier, model=model)


@router.get("/waste")
async def waste(request: Request, model: str | None = None, since: float | None = Since,
                until: float | None = Until, hours: float | None = Hours,
                svc: Services = Depends(services)) -> dict[str, Any]:
    """Waste findings, most expensive first, each with its figure and what to change."""
    cost_scope(request, svc)
    view = await _view(svc, since, until, hours)
    found = [f for f in view.findings if model is None or f.model == model]
    return {"since": view.report.since, "until": view.report.until,
            "findings": [finding_json(f) for f in found],
            "waste_usd": round(sum(f.waste_usd for f in found), 9),
            "utilization": {m: round(u, 4) for m, u in view.utilization.items()}}


@router.get("/dashboard")
async def dashboard_data(request: Request, hours: float = Query(1.0, gt=0, le=24 * 7),
                         svc: Services = Depends(services)) -> dict[str, Any]:
    """Everything the dashboard draws: queue depth now, runners and their state timeline,
    utilization, costs per job and team, and the waste findings, over the last ``hours``."""
    scope = cost_scope(request, svc)
    view = await _view(svc, None, None, hours)
    runners = await run_in_threadpool(svc.store.list_runners, include_stopped=True)
    records = view.report
    names = {r.id: r for r in runners}
    spans = _spans(view)
    depth = await run_in_threadpool(svc.store.queue_depth)
    by_model: dict[str, dict[str, int]] = {}
    for (model, tier), n in depth.items():
        by_model.setdefault(model, {})[tier] = n
    return {
        "now": records.until, "since": records.since, "scope": scope,
        "queue_depth": by_model,
        "tiers": [t.name for t in sorted(svc.tiers.values(), key=lambda t: -t.priority)],
        # Runners (their pids, hosts and timeline) are the operator's to see, not a team's.
        "runners": [runner_json(r) for r in runners if r.state != RunnerState.STOPPED]
        if scope is None else [],
        "timeline": [{"runner_id": rid, "name": names[rid].name if rid in names else rid,
                      "model": names[rid].model if rid in names else "", "spans": s}
                     for rid, s in spans.items()] if scope is None else [],
        # The autoscaler's decisions in the window, drawn under the runner timeline.
        "pool_decisions": [decision_json(d) for d in await run_in_threadpool(
            svc.store.pool_decisions, limit=500) if d.decided_at >= records.since]
        if scope is None else [],
        "cost": report_json(view, team=scope),
        "findings": [finding_json(f) for f in view.findings],
    }


def _spans(view: CostView) -> dict[str, list[dict[str, Any]]]:
    since, until = view.report.since, view.report.until
    spans: dict[str, list[dict[str, Any]]] = {}
    for s in sorted(view.records.spans, key=lambda s: s.started_at):
        spans.setdefault(s.runner_id, []).append(
            {"state": s.state.value, "start": max(s.started_at, since),
             "end": min(s.ended_at, until) if s.ended_at is not None else until})
    return spans
