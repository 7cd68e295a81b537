"""Anthropic's Message Batches API (``/v1/messages/batches``): create, retrieve, list, cancel,
and results as JSONL. A message batch is a Stoker job like an OpenAI batch or ``stoker
submit``'s: queued by tier and team (``scheduling.default_tier``, or the ``X-Stoker-Tier``
header), batched with other work, costed per job. Its id is ``msgbatch_`` and the job's id.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from stoker.api import access
from stoker.api.anthropic.messages import MessagesBody, chat_body, message_json
from stoker.api.body import decode_utf8, invalid, json_body, parse_json
from stoker.api.job_input import JobOptions, ParsedJob, resolve_model
from stoker.api.jobs import owned_job
from stoker.api.services import Services, client_team, services
from stoker.api.submission import enqueue, tier_for
from stoker.core.model import Job, JobStatus, RequestStatus
from stoker.errors import Conflict, InvalidRequest, NotFound
from stoker.jsonl import in_chunks
from stoker.openai_format import CHAT_COMPLETIONS
from stoker.store import NewRequest, ResultRow

router = APIRouter(prefix="/v1/messages/batches", tags=["anthropic"],
                   dependencies=[Depends(access.client)])

#: What marks a job as a message batch (among a team's jobs).
KIND = {"source": "anthropic-message-batch"}
PREFIX = "msgbatch_"
#: Anthropic's own limit on the requests of one batch.
MAX_REQUESTS = 100_000
#: A message batch ends within a day, as Anthropic's: what has not run by then expires.
EXPIRES_AFTER_S = 86_400.0


class BatchRequestIn(BaseModel):
    """One request of a batch: its id within the batch and its Messages body."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    params: MessagesBody

    @field_validator("params")
    @classmethod
    def _not_streamed(cls, params: MessagesBody) -> MessagesBody:
        if params.stream:
            raise ValueError("a batch's requests cannot stream; leave stream out")
        return params


class MessageBatchCreate(BaseModel):
    """The body of ``POST /v1/messages/batches``."""

    model_config = ConfigDict(extra="forbid")

    requests: list[BatchRequestIn] = Field(min_length=1, max_length=MAX_REQUESTS)


@router.post("", openapi_extra=json_body(MessageBatchCreate))
async def create_batch(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """Queue the batch's requests as one job; all of them are checked first."""
    team = client_team(request)
    try:
        body = MessageBatchCreate.model_validate(parse_json(decode_utf8(await request.body())))
    except ValidationError as exc:
        raise invalid(exc) from None
    ids = [r.custom_id for r in body.requests]
    if len(set(ids)) != len(ids):
        raise InvalidRequest("custom_id values must be unique within a batch",
                             param="requests")
    requests = [NewRequest(custom_id=r.custom_id, endpoint=CHAT_COMPLETIONS,
                           body=chat_body(r.params)) for r in body.requests]
    model = resolve_model(requests, default_model=svc.settings.default_model,
                          known=set(svc.settings.models))
    tier = tier_for(svc, team, request.headers.get("x-stoker-tier"), len(requests))
    submitted = await enqueue(svc, team=team, tier=tier,
                              parsed=ParsedJob(model=model, requests=requests),
                              options=JobOptions(metadata=dict(KIND),
                                                 expires_after_s=EXPIRES_AFTER_S))
    return batch_json(submitted.job, request)


@router.get("")
def list_batches(request: Request, svc: Services = Depends(services),
                 limit: int = Query(20, ge=1, le=1000),
                 after_id: str | None = Query(None, max_length=256),
                 before_id: str | None = Query(None, max_length=256)) -> dict[str, Any]:
    """The team's message batches, newest first, paged by ``after_id``/``before_id``."""
    jobs = [j for j in svc.store.list_jobs(limit=10_000, team=client_team(request))
            if j.metadata == KIND]
    ids = [PREFIX + j.id for j in jobs]
    start, end = 0, len(jobs)
    if after_id is not None:
        start = ids.index(after_id) + 1 if after_id in ids else len(ids)
    if before_id is not None:
        end = ids.index(before_id) if before_id in ids else 0
        start = max(start, end - limit)
    page = jobs[start:end][:limit]
    data = [batch_json(j, request) for j in page]
    return {"data": data, "has_more": start + len(page) < end,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}


@router.get("/{batch_id}")
def retrieve_batch(batch_id: str, request: Request,
                   svc: Services = Depends(services)) -> dict[str, Any]:
    """One message batch."""
    return batch_json(_batch_job(svc, batch_id, client_team(request)), request)


@router.post("/{batch_id}/cancel")
def cancel_batch(batch_id: str, request: Request,
                 svc: Services = Depends(services)) -> dict[str, Any]:
    """Cancel the requests not yet run; running ones finish and their results are kept."""
    job = _batch_job(svc, batch_id, client_team(request))
    return batch_json(svc.store.cancel_job(job.id, now=svc.clock.now()), request)


@router.get("/{batch_id}/results", response_model=None,
            responses={200: {"content": {"application/binary": {}}}})
async def batch_results(batch_id: str, request: Request,
                        svc: Services = Depends(services)) -> StreamingResponse:
    """JSONL, a line per request in submission order, once the batch has ended."""
    job = await run_in_threadpool(_batch_job, svc, batch_id, client_team(request))
    if _processing_status(job) != "ended":
        raise Conflict(f"message batch {batch_id!r} is still processing; its results are "
                       "ready once processing_status is 'ended'")

    def lines() -> Iterator[bytes]:
        for row in svc.store.iter_job_results(job.id):
            yield (json.dumps(result_line(row, job.model, expired=job.expired))
                   + "\n").encode()

    return StreamingResponse(in_chunks(lines()), media_type="application/binary")


def _batch_job(svc: Services, batch_id: str, team: str) -> Job:
    missing = NotFound(f"no message batch {batch_id!r}")
    if not batch_id.startswith(PREFIX):
        raise missing
    try:
        job = owned_job(svc, batch_id.removeprefix(PREFIX), team)
    except NotFound:
        raise missing from None
    if job.metadata != KIND:
        raise missing
    return job


def _processing_status(job: Job) -> str:
    if job.status == JobStatus.CANCELLING:
        return "canceling"
    if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED):
        return "ended"
    return "in_progress"


def _rfc3339(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, UTC).isoformat()


def batch_json(job: Job, request: Request) -> dict[str, Any]:
    """A job as Anthropic's ``message_batch`` object."""
    c = job.counts
    status = _processing_status(job)
    batch_id = PREFIX + job.id
    # The requests a deadline cancelled count as expired, as Anthropic counts them.
    cancelled, expired = (0, c.cancelled) if job.expired else (c.cancelled, 0)
    return {
        "id": batch_id, "type": "message_batch", "processing_status": status,
        "request_counts": {"processing": c.queued + c.running, "succeeded": c.succeeded,
                           "errored": c.failed, "canceled": cancelled, "expired": expired},
        "created_at": _rfc3339(job.created_at),
        "expires_at": _rfc3339(job.expires_at or job.created_at + EXPIRES_AFTER_S),
        "ended_at": _rfc3339(job.finished_at) if status == "ended" else None,
        "cancel_initiated_at": None if job.expired else _rfc3339(job.cancelled_at),
        "archived_at": None,
        "results_url": (str(request.url_for("batch_results", batch_id=batch_id))
                        if status == "ended" else None),
    }


def result_line(row: ResultRow, model: str, *, expired: bool = False) -> dict[str, Any]:
    """One line of a batch's results (``expired``: the batch's deadline cancelled what had
    not run)."""
    result: dict[str, Any]
    if row.status == RequestStatus.SUCCEEDED:
        result = {"type": "succeeded", "message": message_json(row, model)}
    elif row.status == RequestStatus.CANCELLED:
        result = {"type": "expired" if expired else "canceled"}
    else:
        refused = row.finish_reason == "error"
        result = {"type": "errored", "error": {"type": "error", "error": {
            "type": "invalid_request_error" if refused else "api_error",
            "message": row.error or "the request failed"}}}
    return {"custom_id": row.custom_id, "result": result}
