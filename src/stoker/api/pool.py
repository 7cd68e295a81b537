"""The pool's size and the autoscaler's reasons, for the operator (``/api/pool``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from fastapi import APIRouter, Depends, Query

from stoker.api import access
from stoker.api.services import Services, services
from stoker.store import PoolDecisionRecord

router = APIRouter(prefix="/api/pool", tags=["pool"], dependencies=[Depends(access.operator)])


def decision_json(d: PoolDecisionRecord) -> dict[str, Any]:
    """A decision as the API shows it."""
    return {"model": d.model, "decided_at": d.decided_at, "controller": d.controller,
            "desired": d.desired, "started": d.started, "stopped": list(d.stopped),
            "reason": d.reason, "signals": dict(d.signals)}


@router.get("")
def pool_status(decisions: int = Query(20, ge=0, le=500),
                svc: Services = Depends(services)) -> dict[str, Any]:
    """Per model: how the pool is sized (fixed or autoscaled), its runners by state, what the
    autoscaler wants and its latest decisions, with the signals behind each."""
    runners = svc.store.list_runners()
    data = []
    for name, spec in svc.settings.models.items():
        states = Counter(r.state.value for r in runners if r.model == name)
        recent = svc.store.pool_decisions(model=name, limit=decisions) if decisions else []
        scale = spec.autoscale
        data.append({
            "model": name,
            "mode": "autoscaled" if scale is not None else "fixed",
            "autoscale": scale.model_dump() if scale is not None else None,
            "fixed_runners": None if scale is not None else svc.settings.runners_for(name),
            "runners": dict(sorted(states.items())),
            "desired": recent[0].desired if recent else None,
            "measured": _measured(svc, name),
            "decisions": [decision_json(d) for d in recent],
        })
    return {"object": "list", "data": data}


def _measured(svc: Services, model: str) -> dict[str, Any]:
    m = svc.store.pool_measurements(model)
    return {"tokens_per_runner_s": m.tokens_per_runner_s,
            "completion_tokens_per_request": m.completion_tokens_per_request,
            "cold_start_s": m.cold_start_s, "cold_starts_measured": m.cold_starts_measured}
