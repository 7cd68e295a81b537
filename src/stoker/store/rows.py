"""Database rows to domain data, shared by every SQL dialect."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stoker.core.model import (
    BatchRecord,
    Job,
    Request,
    RequestCounts,
    RequestStatus,
    Runner,
    RunnerInterval,
    RunnerState,
    job_status,
)
from stoker.store.protocol import ResultRow

Row = Sequence[Any]


def counts_from(status_counts: Sequence[Row]) -> RequestCounts:
    """Request counts from ``(status, n)`` rows."""
    by_status: dict[RequestStatus, int] = {}
    for status, n in status_counts:  # a status may come twice (staged rows count as queued)
        by_status[RequestStatus(status)] = by_status.get(RequestStatus(status), 0) + int(n)
    return RequestCounts(
        total=sum(by_status.values()),
        queued=by_status.get(RequestStatus.QUEUED, 0),
        running=by_status.get(RequestStatus.LEASED, 0),
        succeeded=by_status.get(RequestStatus.SUCCEEDED, 0),
        failed=by_status.get(RequestStatus.FAILED, 0),
        cancelled=by_status.get(RequestStatus.CANCELLED, 0),
    )


def job_from(row: Row, counts: RequestCounts) -> Job:
    """A job from a ``get_job`` row and its counts."""
    (job_id, team, tier, model, created_at, cancelled_at, finished_at, metadata,
     idempotency_key, concurrency_group, superseded_by, expires_at) = row
    return Job(
        id=job_id,
        team=team,
        tier=tier,
        model=model,
        status=job_status(counts, cancelled=cancelled_at is not None),
        created_at=created_at,
        counts=counts,
        finished_at=finished_at,
        metadata=json.loads(metadata) if isinstance(metadata, str) else dict(metadata or {}),
        idempotency_key=idempotency_key,
        concurrency_group=concurrency_group,
        superseded_by=superseded_by,
        cancelled_at=cancelled_at,
        expires_at=expires_at,
    )


def request_from(row: Row) -> Request:
    """A request from a ``leased_requests`` row."""
    (rid, job_id, idx, custom_id, model, tier, endpoint, body, status, attempts, max_attempts,
     enqueued_at, last_error) = row
    return Request(
        id=rid,
        job_id=job_id,
        index=idx,
        custom_id=custom_id,
        model=model,
        tier=tier,
        endpoint=endpoint,
        body=json.loads(body) if isinstance(body, str) else body,
        status=RequestStatus(status),
        attempts=attempts,
        max_attempts=max_attempts,
        enqueued_at=enqueued_at,
        last_error=last_error,
    )


def result_from(row: Row) -> ResultRow:
    """A result row from a ``job_results`` row."""
    (rid, idx, custom_id, endpoint, model, status, last_error, attempts, text, finish_reason,
     prompt_tokens, completion_tokens, error, _created_at, finished_at, cached,
     stop_sequence, logprobs, tool_calls) = row
    return ResultRow(
        request_id=rid,
        index=idx,
        custom_id=custom_id,
        endpoint=endpoint,
        model=model,
        status=RequestStatus(status),
        attempts=attempts,
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_tokens or 0,
        completion_tokens=completion_tokens or 0,
        error=error if error is not None else last_error,
        finished_at=finished_at,
        cached=bool(cached),
        stop_sequence=stop_sequence,
        logprobs=json.loads(logprobs) if logprobs is not None else None,
        tool_calls=json.loads(tool_calls) if tool_calls is not None else None,
    )


def runner_from(row: Row) -> Runner:
    """A runner from a ``get_runner``/``list_runners`` row."""
    (rid, name, model, state, pid, host, max_batch_size, max_wait_ms, registered_at,
     last_heartbeat_at, state_since, leased, revision) = row
    return Runner(
        id=rid,
        name=name,
        model=model,
        state=RunnerState(state),
        pid=pid,
        host=host,
        max_batch_size=max_batch_size,
        max_wait_ms=max_wait_ms,
        registered_at=registered_at,
        last_heartbeat_at=last_heartbeat_at,
        state_since=state_since,
        leased_requests=int(leased or 0),
        revision=revision,
    )


def interval_from(row: Row) -> RunnerInterval:
    """A runner interval from a ``runner_intervals`` row."""
    runner_id, state, started_at, ended_at = row
    return RunnerInterval(runner_id, RunnerState(state), started_at, ended_at)


def batch_from(row: Row) -> BatchRecord:
    """A batch record from a ``list_batches`` row."""
    (bid, runner_id, model, lease_id, started_at, ended_at, request_ids, prompt_tokens,
     completion_tokens) = row
    ids = json.loads(request_ids) if isinstance(request_ids, str) else request_ids
    return BatchRecord(
        id=bid,
        runner_id=runner_id,
        model=model,
        lease_id=lease_id,
        started_at=started_at,
        ended_at=ended_at,
        request_ids=tuple(ids),
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )
