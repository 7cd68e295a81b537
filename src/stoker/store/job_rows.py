"""A job's request rows, made ready before its transaction opens.

A job of 100,000 requests is turned into insert statements of ``ROWS_PER_STATEMENT`` rows
each, its repeated custom_ids refused and its cached answers looked up a page at a time, all
before the store takes its write lock, so the transaction only runs statements. The requests
are read once, as an iterable: a lazily parsed upload is never held whole as objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from stoker.errors import Conflict
from stoker.store.ids import new_id
from stoker.store.protocol import NewJob, NewRequest

ROWS_PER_STATEMENT = 2000

#: Cached answers of some fingerprints: key -> (text, finish_reason, prompt, completion).
CacheLookup = Callable[[list[str]], dict[str, tuple[Any, ...]]]


@dataclass
class PreparedJob:
    """Insert statements' rows (JSON arrays), the cached answers to record, the count."""

    chunks: list[str] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0


def prepare_job_rows(job: NewJob, job_id: str, now: float,
                     lookup: CacheLookup) -> PreparedJob:
    """Every request of ``job`` as rows, in order; Conflict on a repeated custom_id."""
    prepared = PreparedJob()
    seen: set[str] = set()
    page: list[NewRequest] = []
    for request in job.requests:
        if request.custom_id in seen:
            raise Conflict(f"custom_id {request.custom_id!r} appears more than once in the job")
        seen.add(request.custom_id)
        page.append(request)
        if len(page) == ROWS_PER_STATEMENT:
            _add_page(prepared, job, job_id, now, page, lookup)
            page = []
    if page:
        _add_page(prepared, job, job_id, now, page, lookup)
    return prepared


def _add_page(prepared: PreparedJob, job: NewJob, job_id: str, now: float,
              page: Sequence[NewRequest], lookup: CacheLookup) -> None:
    keys = [r.cache_key for r in page if job.use_cache and r.cache_key is not None]
    answers = lookup(keys) if keys else {}
    rows = []
    for offset, r in enumerate(page):
        request_id = new_id("req")
        hit = answers.get(r.cache_key) if job.use_cache and r.cache_key else None
        row = {"id": request_id, "idx": prepared.count + offset, "custom_id": r.custom_id,
               "endpoint": r.endpoint, "body": json.dumps(r.body, separators=(",", ":")),
               "cache_key": r.cache_key if job.use_cache else None}
        if hit:
            row["cached"] = 1
        rows.append(row)
        if hit:
            prepared.hits.append({"request_id": request_id, "job_id": job_id, "text": hit[0],
                                  "finish_reason": hit[1], "prompt_tokens": hit[2],
                                  "completion_tokens": hit[3], "now": now})
    prepared.chunks.append(json.dumps(rows, separators=(",", ":")))
    prepared.count += len(page)
