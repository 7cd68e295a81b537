"""The pool's size and the autoscaler's reasons, for the operator (``/api/pool``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from stoker.api import access
from stoker.api.body import decode_utf8, json_body, parse_json, validate
from stoker.api.result_cache import model_revision
from stoker.api.services import Services, current_checkpoint, services
from stoker.core.lending import lending_pool
from stoker.errors import Conflict, ModelNotFound, Unprocessable
from stoker.store import ModelRoll, PoolDecisionRecord

router = APIRouter(prefix="/api/pool", tags=["pool"], dependencies=[Depends(access.operator)])


class RollIn(BaseModel):
    """A rolling update: the new checkpoint's directory (as the runners' hosts see it)."""

    model_config = ConfigDict(extra="forbid")
    path: str = Field(min_length=1, max_length=4096)
    #: Its revision; default: one derived from the checkpoint's files.
    revision: str | None = Field(None, min_length=1, max_length=128)


def roll_json(roll: ModelRoll) -> dict[str, Any]:
    """A roll as the API shows it."""
    return {"id": roll.id, "model": roll.model, "path": roll.path, "revision": roll.revision,
            "status": roll.status.value, "started_at": roll.started_at,
            "ended_at": roll.ended_at, "message": roll.message}


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
            "rolls": [roll_json(r) for r in svc.store.model_rolls(name, limit=3)],
        })
    return {"object": "list", "data": data, "lending": _lending(svc)}


def _lending(svc: Services) -> list[dict[str, Any]]:
    """Each external fleet: its replicas, and the lending controller's latest decision (the
    replicas lent, what the service needs, the load it was read from)."""
    found = []
    for name, fleet in svc.settings.lending.items():
        latest = svc.store.pool_decisions(model=lending_pool(name), limit=1)
        found.append({"fleet": name, "model": fleet.model, "replicas": sorted(fleet.replicas),
                      "min_serving_replicas": fleet.min_serving_replicas,
                      "lent": latest[0].signals.get("lent", []) if latest else [],
                      "needed": latest[0].desired if latest else None,
                      "decision": decision_json(latest[0]) if latest else None})
    return found


def _measured(svc: Services, model: str) -> dict[str, Any]:
    m = svc.store.pool_measurements(model)
    return {"tokens_per_runner_s": m.tokens_per_runner_s,
            "completion_tokens_per_request": m.completion_tokens_per_request,
            "cold_start_s": m.cold_start_s, "cold_starts_measured": m.cold_starts_measured}


@router.post("/{model}/roll", status_code=202, openapi_extra=json_body(RollIn))
async def roll_model(model: str, request: Request,
                     svc: Services = Depends(services)) -> dict[str, Any]:
    """Move the model's pool to another checkpoint, a runner at a time: a new one is started,
    and once it is warm an old one drains (finishing its batch); never fewer warm runners than
    when the roll began. A new runner that fails to get warm stops the roll; the old ones keep
    serving. 202 with the roll; ``GET /api/pool`` follows it."""
    body: RollIn = validate(RollIn, parse_json(decode_utf8(await request.body())))
    spec = svc.settings.models.get(model)
    if spec is None:
        raise ModelNotFound(f"model {model!r} is not configured; configured: "
                            f"{', '.join(sorted(svc.settings.models))}")
    if spec.is_remote:
        raise Unprocessable(f"{model!r} is a remote model: point its config at the new one")
    if spec.autoscale is None:
        raise Unprocessable(f"{model!r} has a fixed pool; rolling updates are made by the "
                            "autoscaler's controller: give the model an autoscale section")
    path = Path(body.path)
    if not (path / "config.json").is_file():
        raise Unprocessable(f"{body.path!r} is not a checkpoint directory (no config.json)")
    revision: str = body.revision if body.revision is not None else \
        await run_in_threadpool(model_revision, path, None)
    current = await run_in_threadpool(current_checkpoint, svc, model)
    if revision == current.revision:
        raise Conflict(f"{model!r} already runs revision {revision} (from {current.path}); "
                       "give the new checkpoint's revision, or change its files")
    roll = await run_in_threadpool(svc.store.start_roll, model, str(path), revision,
                                   now=svc.clock.now())
    return roll_json(roll)
