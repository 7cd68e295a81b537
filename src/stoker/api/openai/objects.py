"""Files and batches as the OpenAI API shapes them, and the output and error files a batch's
results make. Output files are derived from the recorded results when read, never copied."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from stoker.api.render import result_line
from stoker.core.model import Job, JobStatus, RequestStatus
from stoker.store import OpenAIBatch, ResultRow, StoredFile

OUTPUT = "output"
ERRORS = "errors"
_DERIVED = re.compile(r"^file-(batch_[0-9a-f]+)-(output|errors)$")


def derived_file_id(batch_id: str, kind: str) -> str:
    """The id of a batch's output (``kind="output"``) or error file."""
    return f"file-{batch_id}-{kind}"


def parse_derived_file_id(file_id: str) -> tuple[str, str] | None:
    """``(batch_id, kind)`` for an output or error file id, else None."""
    match = _DERIVED.match(file_id)
    return (match.group(1), match.group(2)) if match else None


def file_json(f: StoredFile) -> dict[str, Any]:
    """An uploaded file as an OpenAI file object."""
    return {"id": f.id, "object": "file", "bytes": f.bytes, "created_at": int(f.created_at),
            "filename": f.filename, "purpose": f.purpose, "status": "processed",
            "status_details": None, "expires_at": None}


def derived_file_json(batch: OpenAIBatch, kind: str, size: int,
                      finished_at: float) -> dict[str, Any]:
    """A batch's output or error file (``size`` bytes) as an OpenAI file object."""
    return {"id": derived_file_id(batch.id, kind), "object": "file", "bytes": size,
            "created_at": int(finished_at), "filename": f"{batch.id}_{kind}.jsonl",
            "purpose": "batch_output", "status": "processed", "status_details": None,
            "expires_at": None}


@dataclass(frozen=True, slots=True)
class BatchView:
    """A batch with its job (None when it failed validation)."""

    batch: OpenAIBatch
    job: Job | None

    @property
    def status(self) -> str:
        """The OpenAI batch status."""
        b, job = self.batch, self.job
        if b.failed_at is not None or job is None:
            return "failed"
        if b.expired_at is not None:
            return "expired"
        return {JobStatus.CANCELLING: "cancelling", JobStatus.CANCELLED: "cancelled",
                JobStatus.COMPLETED: "completed"}.get(job.status, "in_progress")

    @property
    def finished(self) -> bool:
        """Whether the batch's files are final."""
        return self.status in ("failed", "expired", "cancelled", "completed") and (
            self.job is None or self.job.finished_at is not None)

    def has_errors(self) -> bool:
        """Whether the error file has lines."""
        c = self.job.counts if self.job else None
        return bool(self.batch.invalid_lines) or bool(c and (c.failed or c.cancelled))


def batch_json(view: BatchView, *, model: str | None,
               tokens: tuple[int, int] | None) -> dict[str, Any]:
    """A batch as an OpenAI batch object; ``tokens`` is (prompt, completion) so far."""
    b, job, status = view.batch, view.job, view.status

    def at(value: float | None) -> int | None:
        return int(value) if value is not None else None

    finished_at = job.finished_at if job else None
    counts = job.counts if job else None
    return {
        "id": b.id, "object": "batch", "endpoint": b.endpoint, "model": model,
        "errors": ({"object": "list", "data": list(b.errors)} if b.errors else None),
        "input_file_id": b.input_file_id, "completion_window": b.completion_window,
        "status": status,
        "output_file_id": (derived_file_id(b.id, OUTPUT)
                           if view.finished and job is not None else None),
        "error_file_id": (derived_file_id(b.id, ERRORS)
                          if view.finished and view.has_errors() else None),
        "created_at": int(b.created_at),
        "in_progress_at": int(b.created_at) if job is not None else None,
        "expires_at": int(b.expires_at),
        "finalizing_at": at(finished_at) if status == "completed" else None,
        "completed_at": at(finished_at) if status == "completed" else None,
        "failed_at": at(b.failed_at),
        "expired_at": at(b.expired_at),
        "cancelling_at": at(b.cancelling_at),
        "cancelled_at": at(finished_at) if status == "cancelled" else None,
        "request_counts": {
            "total": b.total_lines,
            "completed": counts.succeeded if counts else 0,
            # As OpenAI counts them: lines a cancel or the window's end left unrun failed.
            "failed": (counts.failed + counts.cancelled if counts else 0)
            + len(b.invalid_lines),
        },
        "usage": _usage(tokens),
        "metadata": b.metadata or None,
    }


def output_file(rows: Iterable[ResultRow]) -> Iterator[bytes]:
    """The output file, line by line: one per request that succeeded, in input order."""
    for row in rows:
        line = result_line(row) if row.status == RequestStatus.SUCCEEDED else None
        if line is not None:
            yield (json.dumps(line) + "\n").encode()


def error_file(view: BatchView, rows: Iterable[ResultRow]) -> Iterator[bytes]:
    """The error file, line by line: rejected input lines, then requests that failed or
    never ran."""
    for line in _error_lines(view, rows):
        yield (json.dumps(line) + "\n").encode()


def _error_lines(view: BatchView, rows: Iterable[ResultRow]) -> Iterator[dict[str, Any]]:
    expired = view.batch.expired_at is not None
    yield from view.batch.invalid_lines
    for row in rows:
        if row.status == RequestStatus.CANCELLED:
            # OpenAI's codes for lines a batch's end left unrun.
            code, why = (("batch_expired", "before the batch's completion window ended")
                         if expired else ("batch_cancelled", "before the batch was cancelled"))
            yield {"id": f"batch_req_{row.request_id}", "custom_id": row.custom_id,
                   "response": None,
                   "error": {"code": code, "message": f"the request did not run {why}"}}
        elif row.status == RequestStatus.FAILED:
            line = result_line(row)
            if line is not None:
                yield line


def _usage(tokens: tuple[int, int] | None) -> dict[str, Any] | None:
    if tokens is None:
        return None
    prompt, completion = tokens
    return {"input_tokens": prompt, "output_tokens": completion,
            "total_tokens": prompt + completion, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0}}
