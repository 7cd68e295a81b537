"""OpenAI-compatible Batches: each batch is a Stoker job over an uploaded input file, in the
``batch`` tier unless its metadata names another tier the team may use (``{"tier": …}``)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from stoker.api import access
from stoker.api.body import decode_utf8, describe, json_body, parse_json
from stoker.api.job_input import JobOptions, ParsedJob
from stoker.api.openai.batch_input import MAX_LISTED_ERRORS, read_batch_input
from stoker.api.openai.objects import BatchView, batch_json
from stoker.api.services import Services, client_team, services
from stoker.api.submission import enqueue, tier_for
from stoker.errors import Conflict, NotFound, Unprocessable
from stoker.openai_format import BODY_BY_ENDPOINT
from stoker.store import NewBatch, OpenAIBatch

router = APIRouter(prefix="/v1/batches", tags=["openai"],
                   dependencies=[Depends(access.client)])

_WINDOW = re.compile(r"^([1-9][0-9]{0,2})h$")
MAX_WINDOW_H = 168


class BatchCreate(BaseModel):
    """The body of ``POST /v1/batches``."""

    # Newer SDK fields (output_expires_after, …) are accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    input_file_id: str = Field(min_length=1, max_length=256)
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, str] | None = Field(None, max_length=16)


def _window_s(window: str) -> float:
    match = _WINDOW.match(window)
    if match is None or int(match.group(1)) > MAX_WINDOW_H:
        raise Unprocessable(f"completion_window {window!r} is not supported: OpenAI takes "
                            f"'24h'; Stoker takes that or any whole number of hours from '1h' "
                            f"to '{MAX_WINDOW_H}h'", param="completion_window")
    return int(match.group(1)) * 3600.0


@router.post("", openapi_extra=json_body(BatchCreate))
async def create_batch(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """Validate the input file and queue its lines as one job; a file with any bad line (or
    none at all) makes a ``failed`` batch whose errors name the lines, and runs nothing."""
    team = client_team(request)
    try:
        body = BatchCreate.model_validate(parse_json(decode_utf8(await request.body())))
    except ValidationError as exc:
        raise Unprocessable(f"body: {describe(exc)}") from None
    if body.endpoint not in BODY_BY_ENDPOINT:
        raise Unprocessable(f"endpoint {body.endpoint!r} is not supported; use one of "
                            f"{', '.join(BODY_BY_ENDPOINT)}")
    window_s = _window_s(body.completion_window)
    metadata = body.metadata or {}
    upload = await run_in_threadpool(svc.store.get_file, body.input_file_id)
    if upload.team != team:
        raise NotFound(f"no file {body.input_file_id!r}")
    if upload.purpose != "batch":
        raise Unprocessable(f"file {upload.id!r} has purpose {upload.purpose!r}; a batch "
                            "reads a file uploaded with purpose 'batch'")
    content = await run_in_threadpool(svc.store.file_content, upload.id)
    # Off the event loop, as a large file takes a while to validate line by line.
    found = await run_in_threadpool(
        read_batch_input, content, endpoint=body.endpoint,
        default_model=svc.settings.default_model,
        token_limits={name: spec.max_new_tokens for name, spec in svc.settings.models.items()},
        max_requests=svc.settings.limits.max_requests_per_job)
    spec = NewBatch(team=team, endpoint=body.endpoint, input_file_id=upload.id,
                    completion_window=body.completion_window, window_s=window_s,
                    metadata=metadata, total_lines=found.total)
    if found.problems or not found.requests or found.model is None:
        errors = found.problems[:MAX_LISTED_ERRORS] or [{
            "code": "invalid_file", "param": None, "line": None,
            "message": "the file has no request lines"}]
        if len(found.problems) > MAX_LISTED_ERRORS:
            errors.append({"code": "more_errors", "param": None, "line": None,
                           "message": f"{len(found.problems) - MAX_LISTED_ERRORS} more bad "
                                      "lines not listed; fix these and validate again"})
        failed = await run_in_threadpool(svc.store.record_failed_batch, spec, errors,
                                         now=svc.clock.now())
        return batch_json(BatchView(failed, None), model=None, tokens=None)
    tier = tier_for(svc, team, metadata.get("tier"), len(found.requests))
    submitted = await enqueue(
        svc, team=team, tier=tier, parsed=ParsedJob(model=found.model, requests=found.requests),
        options=JobOptions(tier=tier.name, metadata=metadata), batch=spec)
    assert submitted.batch_id is not None  # the store stores a batch given with its job
    return await run_in_threadpool(_batch_json, svc, submitted.batch_id, team)


@router.get("")
def list_batches(request: Request, limit: int = Query(20, ge=1, le=100),
                 after: str | None = Query(None),
                 svc: Services = Depends(services)) -> dict[str, Any]:
    """The caller's batches, newest first (``after``: the last id of the page before)."""
    team = client_team(request)
    if after is not None:
        _owned(svc, after, team)
    found = svc.store.list_openai_batches(team=team, after=after, limit=limit + 1)
    data = [_view_json(svc, b) for b in found[:limit]]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(found) > limit}


@router.get("/{batch_id}")
def get_batch(batch_id: str, request: Request,
              svc: Services = Depends(services)) -> dict[str, Any]:
    """A batch's status, counts and (once finished) its output and error file ids."""
    return _batch_json(svc, batch_id, client_team(request))


@router.post("/{batch_id}/cancel")
def cancel_batch(batch_id: str, request: Request,
                 svc: Services = Depends(services)) -> dict[str, Any]:
    """Cancel: queued requests are dropped, running ones finish; results so far are kept."""
    team = client_team(request)
    view = _view(svc, _owned(svc, batch_id, team))
    if view.finished or view.status in ("failed", "expired"):
        raise Conflict(f"batch {batch_id!r} is {view.status}; only a batch in progress can be "
                       "cancelled")
    svc.store.cancel_openai_batch(batch_id, now=svc.clock.now())
    svc.dispatcher.notify_progress()
    return _batch_json(svc, batch_id, team)


def _owned(svc: Services, batch_id: str, team: str) -> OpenAIBatch:
    batch = svc.store.get_openai_batch(batch_id)
    if batch.team != team:
        raise NotFound(f"no batch {batch_id!r}")
    return batch


def _view(svc: Services, batch: OpenAIBatch) -> BatchView:
    return BatchView(batch, svc.store.get_job(batch.job_id) if batch.job_id else None)


def _view_json(svc: Services, batch: OpenAIBatch) -> dict[str, Any]:
    view = _view(svc, batch)
    tokens = svc.store.job_tokens(batch.job_id) if batch.job_id is not None else None
    return batch_json(view, model=view.job.model if view.job else None, tokens=tokens)


def _batch_json(svc: Services, batch_id: str, team: str) -> dict[str, Any]:
    return _view_json(svc, _owned(svc, batch_id, team))
