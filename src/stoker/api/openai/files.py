"""OpenAI-compatible Files: upload a batch input file, read it back, list, delete; and read a
batch's output and error files, derived from its results."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from stoker.api import access
from stoker.api.openai.objects import (
    OUTPUT,
    BatchView,
    derived_file_json,
    error_file,
    file_json,
    output_file,
    parse_derived_file_id,
)
from stoker.api.services import Services, client_team, services
from stoker.errors import Conflict, NotFound, Unprocessable
from stoker.jsonl import in_chunks
from stoker.store import Store, StoredFile

router = APIRouter(prefix="/v1/files", tags=["openai"],
                   dependencies=[Depends(access.client)])

PURPOSES = ("batch",)


@router.post("")
async def create_file(request: Request, file: UploadFile = File(...),
                      purpose: str = Form(...),
                      svc: Services = Depends(services)) -> dict[str, Any]:
    """Store an uploaded file (``purpose="batch"``: a JSONL batch input)."""
    team = client_team(request)
    if purpose not in PURPOSES:
        raise Unprocessable(f"purpose {purpose!r} is not supported; Stoker stores files with "
                            f"purpose {', '.join(PURPOSES)}")
    content = await file.read()
    stored = await run_in_threadpool(
        svc.store.create_file, team=team, purpose=purpose,
        filename=(file.filename or "upload.jsonl")[:255], content=content, now=svc.clock.now())
    return file_json(stored)


@router.get("")
def list_files(request: Request, purpose: str | None = Query(None),
               limit: int = Query(100, ge=1, le=10_000), after: str | None = Query(None),
               svc: Services = Depends(services)) -> dict[str, Any]:
    """The caller's uploaded files, newest first (``after``: the last id of the page before)."""
    team = client_team(request)
    if after is not None:
        _owned_upload(svc, after, team)
    found = svc.store.list_files(team=team, purpose=purpose, after=after, limit=limit + 1)
    data = [file_json(f) for f in found[:limit]]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": len(found) > limit}


@router.get("/{file_id}")
def get_file(file_id: str, request: Request,
             svc: Services = Depends(services)) -> dict[str, Any]:
    """A file's metadata."""
    team = client_team(request)
    derived = _derived(svc, file_id, team)
    if derived is not None:
        # Its size is counted as the file streams, line by line: nothing is held whole.
        size = sum(len(line) for line in derived.lines())
        return derived_file_json(derived.view.batch, derived.kind, size, derived.finished_at)
    return file_json(_owned_upload(svc, file_id, team))


@router.get("/{file_id}/content")
def file_content(file_id: str, request: Request,
                 svc: Services = Depends(services)) -> Response:
    """A file's bytes."""
    team = client_team(request)
    derived = _derived(svc, file_id, team)
    if derived is not None:
        return StreamingResponse(in_chunks(derived.lines()), media_type="application/jsonl")
    _owned_upload(svc, file_id, team)
    return Response(svc.store.file_content(file_id), media_type="application/octet-stream")


@router.delete("/{file_id}")
def delete_file(file_id: str, request: Request,
                svc: Services = Depends(services)) -> dict[str, Any]:
    """Delete an uploaded file. A batch's output and error files go with the batch's records."""
    team = client_team(request)
    if _derived(svc, file_id, team) is not None:
        raise Conflict(f"file {file_id!r} is derived from its batch's results and cannot be "
                       "deleted on its own")
    _owned_upload(svc, file_id, team)
    svc.store.delete_file(file_id, now=svc.clock.now())
    return {"id": file_id, "object": "file", "deleted": True}


def _owned_upload(svc: Services, file_id: str, team: str) -> StoredFile:
    found = svc.store.get_file(file_id)
    if found.team != team:
        raise NotFound(f"no file {file_id!r}")
    return found


@dataclass(frozen=True, slots=True)
class DerivedFile:
    """A batch's output or error file, made from its recorded results when read."""

    store: Store
    view: BatchView
    kind: str
    finished_at: float

    def lines(self) -> Iterator[bytes]:
        """The file's lines, read from the store a page at a time."""
        job_id = self.view.batch.job_id
        rows = self.store.iter_job_results(job_id) if job_id else iter(())
        return output_file(rows) if self.kind == OUTPUT else error_file(self.view, rows)


def _derived(svc: Services, file_id: str, team: str) -> DerivedFile | None:
    """A batch's output or error file, if ``file_id`` names one the team may read."""
    parsed = parse_derived_file_id(file_id)
    if parsed is None:
        return None
    batch_id, kind = parsed
    try:
        batch = svc.store.get_openai_batch(batch_id)
    except NotFound:
        raise NotFound(f"no file {file_id!r}") from None
    job = svc.store.get_job(batch.job_id) if batch.job_id else None
    view = BatchView(batch, job)
    if batch.team != team or not view.finished:
        raise NotFound(f"no file {file_id!r}")
    finished_at = (job.finished_at if job else None) or batch.failed_at or batch.created_at
    return DerivedFile(svc.store, view, kind, finished_at)
