"""The native job API: submit, inspect, fetch results, cancel."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from stoker.api import access
from stoker.api.body import decode_utf8, json_body, parse_json, validate
from stoker.api.job_input import (
    JobOptions,
    JobSubmission,
    ParsedJob,
    parse_submission,
    resolve_model_names,
)
from stoker.api.jsonl_upload import read_upload, validate_upload
from stoker.api.render import callback_json, job_json, result_line
from stoker.api.services import Services, client_team, services
from stoker.api.submission import enqueue, tier_for
from stoker.core.model import JOB_TERMINAL, Job
from stoker.errors import NotFound
from stoker.jsonl import in_chunks

router = APIRouter(prefix="/api/jobs", tags=["jobs"],
                   dependencies=[Depends(access.client)])

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines",
               "text/plain")


def _is_jsonl(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in JSONL_TYPES


@router.post("", status_code=201, openapi_extra=json_body(JobSubmission))
async def submit_job(
    request: Request,
    tier: str | None = Query(None, description="tier (JSONL upload)"),
    concurrency_group: str | None = Query(None, max_length=256,
                                          description="concurrency group (JSONL upload)"),
    cancel_in_progress: bool = Query(False, description="supersede the group's older jobs"),
    cache: bool = Query(True, description="answer repeated deterministic requests from cache"),
    pin_revision: bool = Query(False, description="serve every request by the model revision "
                                                  "current now, through a rolling update too"),
    expires_after_s: float | None = Query(None, description="cancel what has not run this "
                                                            "many seconds after submission"),
    callback_url: str | None = Query(None, max_length=2048,
                                     description="POSTed the finished job, signed"),
    idempotency_key: str | None = Header(None, max_length=256),
    svc: Services = Depends(services),
) -> JSONResponse:
    """Submit a job: JSON ``{"requests": [...], options}`` or a JSONL upload.

    201 with the new job; 200 with the existing one for a repeated ``Idempotency-Key``.
    """
    team = client_team(request)
    limit = svc.settings.limits.max_requests_per_job
    options = validate(JobOptions, {"tier": tier, "concurrency_group": concurrency_group,
                                    "cancel_in_progress": cancel_in_progress, "cache": cache,
                                    "pin_revision": pin_revision,
                                    "expires_after_s": expires_after_s,
                                    "callback_url": callback_url},
                       where="query")
    if _is_jsonl(request):
        upload = await read_upload(request, max_lines=limit)
        if len(upload) >= svc.settings.limits.upload_worker_min_bytes:
            validated = await svc.upload_worker.validate(upload, max_requests=limit)
        else:
            validated = await run_in_threadpool(validate_upload, upload, max_requests=limit)
        requests, names = validated

        def parse() -> tuple[JobOptions, ParsedJob]:
            model = resolve_model_names(names, default_model=svc.settings.default_model,
                                        known=set(svc.settings.models))
            return options, ParsedJob(model=model, requests=requests)
    else:
        raw = await request.body()

        def parse() -> tuple[JobOptions, ParsedJob]:
            return parse_submission(parse_json(decode_utf8(raw)), options, lines=None,
                                    max_requests=limit,
                                    default_model=svc.settings.default_model,
                                    known_models=set(svc.settings.models))

    # Off the event loop: a large job takes tens of milliseconds to validate, which would
    # otherwise hold up every lease and report the replica is serving meanwhile.
    options, parsed = await run_in_threadpool(parse)
    tier_spec = tier_for(svc, team, options.tier, len(parsed.requests))
    submitted = await enqueue(svc, team=team, tier=tier_spec, parsed=parsed, options=options,
                              idempotency_key=idempotency_key)
    return JSONResponse(job_json(submitted.job), status_code=201 if submitted.created else 200)


def owned_job(svc: Services, job_id: str, team: str) -> Job:
    """The team's job ``job_id``; another team's is as missing as one that never was."""
    job = svc.store.get_job(job_id)
    if job.team != team:
        raise NotFound(f"no job {job_id!r}")
    return job


@router.get("")
def list_jobs(
    request: Request,
    limit: int = Query(50, ge=1, le=1000),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """The most recent jobs of the caller's team."""
    jobs = svc.store.list_jobs(limit=limit, team=client_team(request))
    return {"object": "list", "data": [job_json(j) for j in jobs]}


@router.get("/{job_id}")
async def get_job(
    job_id: str,
    request: Request,
    wait_s: float = Query(0.0, ge=0.0, le=60.0,
                          description="hold the call until the job finishes, up to this long"),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """A job's status and request counts; with ``wait_s``, a long-poll for its end."""
    team = client_team(request)
    job = await run_in_threadpool(owned_job, svc, job_id, team)
    deadline = svc.clock.now() + wait_s
    while job.status not in JOB_TERMINAL and (remaining := deadline - svc.clock.now()) > 0:
        await svc.dispatcher.wait_progress(remaining)
        job = await run_in_threadpool(owned_job, svc, job_id, team)
    found = job_json(job)
    callback = await run_in_threadpool(svc.store.get_job_callback, job_id)
    if callback is not None:
        found["callback"] = callback_json(callback)
    return found


@router.get("/{job_id}/results")
def job_results(job_id: str, request: Request, svc: Services = Depends(services)) -> Response:
    """JSONL: one line per finished request, in submission order (open requests are left out)."""
    owned_job(svc, job_id, client_team(request))

    def lines() -> Iterator[bytes]:
        for row in svc.store.iter_job_results(job_id):
            line = result_line(row)
            if line is not None:
                yield (json.dumps(line) + "\n").encode()

    # Streamed a page of rows at a time: a million-line job downloads in constant memory.
    return StreamingResponse(in_chunks(lines()), media_type="application/jsonl")


@router.get("/{job_id}/batches")
def job_batches(job_id: str, request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """How the job was batched: every pass that ran its requests, and its average batch size."""
    owned_job(svc, job_id, client_team(request))
    found = svc.store.job_batches(job_id)
    data = [
        {"id": jb.batch.id, "runner_id": jb.batch.runner_id, "started_at": jb.batch.started_at,
         "ended_at": jb.batch.ended_at, "size": len(jb.batch.request_ids),
         "job_requests": jb.job_requests, "prompt_tokens": jb.batch.prompt_tokens,
         "completion_tokens": jb.batch.completion_tokens}
        for jb in found
    ]
    sizes = [len(jb.batch.request_ids) for jb in found]
    return {"object": "list", "data": data,
            "average_batch_size": sum(sizes) / len(sizes) if sizes else 0.0}


@router.post("/{job_id}/cancel")
def cancel_job(job_id: str, request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """Cancel the job's queued requests; running ones finish and every result is kept."""
    owned_job(svc, job_id, client_team(request))
    job = svc.store.cancel_job(job_id, now=svc.clock.now())
    return job_json(job)
