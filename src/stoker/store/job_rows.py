"""A job's request rows, made ready before its transaction opens.

A job of 100,000 requests is turned into insert statements of ``ROWS_PER_STATEMENT`` rows
each, its repeated custom_ids refused and its cached answers looked up a page at a time, all
before the store takes its write lock, so the transaction only runs statements. The requests
are read once, as an iterable: a lazily parsed upload is never held whole as objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]  # in CPython, not typeshed
from typing import Any

from stoker.errors import Conflict
from stoker.store.ids import new_id
from stoker.store.protocol import EncodedRequests, NewJob, NewRequest

ROWS_PER_STATEMENT = 500

#: Cached answers of some fingerprints: key -> (text, finish_reason, prompt, completion,
#: stop_sequence, logprobs and tool_calls as JSON text).
CacheLookup = Callable[[list[str]], dict[str, tuple[Any, ...]]]


@dataclass(frozen=True, slots=True)
class RowPage:
    """One insert statement's rows (a JSON array), its cached answers, how many rows."""

    rows: str
    hits: list[dict[str, Any]]
    count: int


@dataclass
class PreparedJob:
    """Insert statements' rows (JSON arrays), the cached answers to record, the count."""

    chunks: list[str] = field(default_factory=list)
    hits: list[dict[str, Any]] = field(default_factory=list)
    count: int = 0


def job_pages(job: NewJob, job_id: str, now: float, lookup: CacheLookup) -> Iterator[RowPage]:
    """Every request of ``job`` as pages of rows, in order, made as they are asked for;
    Conflict on a repeated custom_id."""
    if not job.use_cache and isinstance(job.requests, EncodedRequests):
        yield from _encoded_pages(job.requests)
        return
    seen: set[str] = set()
    page: list[NewRequest] = []
    count = 0
    for request in job.requests:
        if request.custom_id in seen:
            raise Conflict(f"custom_id {request.custom_id!r} appears more than once in the job")
        seen.add(request.custom_id)
        page.append(request)
        if len(page) == ROWS_PER_STATEMENT:
            yield _page(job, job_id, now, page, count, lookup)
            count += len(page)
            page = []
    if page:
        yield _page(job, job_id, now, page, count, lookup)


def _encoded_pages(requests: EncodedRequests) -> Iterator[RowPage]:
    """Pages of rows made from each request's compact JSON text, its body copied as text:
    no body is parsed or encoded again (seconds for a 100,000-line upload otherwise)."""
    seen: set[str] = set()
    rows: list[str] = []
    count = 0
    for line in requests.canonical_lines():
        text = line.decode("utf-8")
        # ["custom_id","endpoint",{body}]: the two strings' ends, then the body as it is.
        custom_id, custom_id_end = scanstring(text, 2)
        _, endpoint_end = scanstring(text, custom_id_end + 2)
        if custom_id in seen:
            raise Conflict(f"custom_id {custom_id!r} appears more than once in the job")
        seen.add(custom_id)
        rows.append(f'{{"id":"{new_id("req")}","idx":{count + len(rows)},'
                    f'"custom_id":{text[1:custom_id_end]},'
                    f'"endpoint":{text[custom_id_end + 1:endpoint_end]},'
                    f'"body":{json.dumps(text[endpoint_end + 1:-1])},"cache_key":null}}')
        if len(rows) == ROWS_PER_STATEMENT:
            yield RowPage("[" + ",".join(rows) + "]", [], len(rows))
            count += len(rows)
            rows = []
    if rows:
        yield RowPage("[" + ",".join(rows) + "]", [], len(rows))


def prepare_job_rows(job: NewJob, job_id: str, now: float,
                     lookup: CacheLookup) -> PreparedJob:
    """Every request of ``job`` as rows, in order, all at once; Conflict on a repeated
    custom_id."""
    prepared = PreparedJob()
    for page in job_pages(job, job_id, now, lookup):
        prepared.chunks.append(page.rows)
        prepared.hits.extend(page.hits)
        prepared.count += page.count
    return prepared


def _page(job: NewJob, job_id: str, now: float, page: Sequence[NewRequest], first_idx: int,
          lookup: CacheLookup) -> RowPage:
    keys = [r.cache_key for r in page if job.use_cache and r.cache_key is not None]
    answers = lookup(keys) if keys else {}
    rows, hits = [], []
    for offset, r in enumerate(page):
        request_id = new_id("req")
        hit = answers.get(r.cache_key) if job.use_cache and r.cache_key else None
        row = {"id": request_id, "idx": first_idx + offset, "custom_id": r.custom_id,
               "endpoint": r.endpoint, "body": json.dumps(r.body, separators=(",", ":")),
               "cache_key": r.cache_key if job.use_cache else None}
        if hit:
            row["cached"] = 1
            hits.append({"request_id": request_id, "job_id": job_id, "text": hit[0],
                         "finish_reason": hit[1], "prompt_tokens": hit[2],
                         "completion_tokens": hit[3], "stop_sequence": hit[4],
                         "logprobs": hit[5], "tool_calls": hit[6], "now": now})
        rows.append(row)
    return RowPage(json.dumps(rows, separators=(",", ":")), hits, len(page))
