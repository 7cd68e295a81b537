"""Jobs, results and runners as the JSON the API returns."""

from __future__ import annotations

from typing import Any

from stoker.core.commands import COMMAND_ENDPOINT
from stoker.core.model import Job, RequestStatus, Runner
from stoker.openai_format import error_body
from stoker.openai_responses import Choice, completion_response_body
from stoker.store import JobCallback, ResultRow


def job_json(job: Job) -> dict[str, Any]:
    """A job with its status and request counts."""
    c = job.counts
    return {
        "id": job.id,
        "object": "job",
        "status": job.status.value,
        "team": job.team,
        "tier": job.tier,
        "model": job.model,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
        "metadata": job.metadata,
        "idempotency_key": job.idempotency_key,
        "concurrency_group": job.concurrency_group,
        "superseded_by": job.superseded_by,
        "expires_at": job.expires_at,
        "expired": job.expired,
        "request_counts": {
            "total": c.total, "queued": c.queued, "running": c.running,
            "succeeded": c.succeeded, "failed": c.failed, "cancelled": c.cancelled,
            "completed": c.succeeded, "finished": c.finished,
        },
    }


def callback_json(callback: JobCallback) -> dict[str, Any]:
    """How a job's completion callback went (its URL is the owner's own)."""
    return {"url": callback.url, "state": callback.state.value, "attempts": callback.attempts,
            "delivered_at": callback.delivered_at, "given_up_at": callback.given_up_at,
            "last_error": callback.last_error}


def choice_of(row: ResultRow) -> Choice:
    """A succeeded request's answer as a response's choice."""
    return Choice(row.text or "", row.finish_reason or "stop", row.logprobs, row.tool_calls)


def result_line(row: ResultRow) -> dict[str, Any] | None:
    """One output line in the OpenAI Batch output format, or None while the request is open."""
    line: dict[str, Any] = {"id": f"batch_req_{row.request_id}", "custom_id": row.custom_id,
                            "response": None, "error": None, "cached": row.cached}
    created = int(row.finished_at or 0)
    if row.status == RequestStatus.SUCCEEDED and row.endpoint == COMMAND_ENDPOINT:
        line["response"] = {"status_code": 200, "request_id": row.request_id,
                            "body": {"object": "command.result", "exit_code": 0,
                                     "output_tail": row.text or ""}}
    elif row.status == RequestStatus.SUCCEEDED:
        line["response"] = {
            "status_code": 200,
            "request_id": row.request_id,
            "body": completion_response_body(
                endpoint=row.endpoint, request_id=row.request_id, model=row.model,
                created=created, choices=[choice_of(row)], prompt_tokens=row.prompt_tokens,
                completion_tokens=row.completion_tokens,
            ),
        }
    elif row.status == RequestStatus.FAILED and row.finish_reason == "error":
        # The model refused this input (e.g. too long): an HTTP-style 400 for this line.
        line["response"] = {
            "status_code": 400,
            "request_id": row.request_id,
            "body": error_body(row.error or "invalid request", kind="invalid_request_error"),
        }
    elif row.status == RequestStatus.FAILED:
        line["error"] = {"code": "request_failed",
                         "message": f"{row.error or 'failed'} (after {row.attempts} attempts)"}
    elif row.status == RequestStatus.CANCELLED:
        line["error"] = {"code": "cancelled", "message": "the job was cancelled before this ran"}
    else:
        return None
    return line


def runner_json(runner: Runner) -> dict[str, Any]:
    """A runner's public state."""
    return {
        "id": runner.id,
        "name": runner.name,
        "model": runner.model,
        "state": runner.state.value,
        "state_since": runner.state_since,
        "pid": runner.pid,
        "host": runner.host,
        "max_batch_size": runner.max_batch_size,
        "max_wait_ms": runner.max_wait_ms,
        "registered_at": runner.registered_at,
        "last_heartbeat_at": runner.last_heartbeat_at,
        "batch_in_hand": runner.leased_requests,
        "revision": runner.revision,
    }
