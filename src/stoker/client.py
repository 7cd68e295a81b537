"""A small client for Stoker's native API, used by the CLI, the demo and the benchmarks."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

from stoker.core.model import JOB_TERMINAL, JobStatus
from stoker.jsonl import jsonl_lines

DEFAULT_SERVER = "http://127.0.0.1:8420"


class ApiError(Exception):
    """The server refused a call; carries its status and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def default_server() -> str:
    """``$STOKER_SERVER``, else the local default."""
    return os.environ.get("STOKER_SERVER", DEFAULT_SERVER)


class StokerClient:
    """Submit jobs, follow them, fetch results, list runners."""

    def __init__(self, server: str | None = None, *, token: str | None = None,
                 timeout_s: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.server = (server or default_server()).rstrip("/")
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> StokerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                err = response.json()["error"]
                raise ApiError(response.status_code, err["code"], err["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "http_error", response.text[:300]) from None
        return response

    def submit_jsonl(self, data: bytes, *, tier: str | None = None,
                     concurrency_group: str | None = None, cancel_in_progress: bool = False,
                     idempotency_key: str | None = None, cache: bool = True,
                     callback_url: str | None = None) -> dict[str, Any]:
        """Submit a JSONL file's bytes as one job (``callback_url``: POSTed the finished
        job, signed with the team's webhook secret)."""
        params: dict[str, str] = {}
        if callback_url:
            params["callback_url"] = callback_url
        if tier:
            params["tier"] = tier
        if concurrency_group:
            params["concurrency_group"] = concurrency_group
            params["cancel_in_progress"] = str(cancel_in_progress).lower()
        if not cache:
            params["cache"] = "false"
        headers = {"Content-Type": "application/jsonl"}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return dict(self._ok(self._http.post(
            "/api/jobs", content=data, params=params, headers=headers)).json())

    def submit(self, requests: list[dict[str, Any]], *, tier: str | None = None,
               metadata: dict[str, str] | None = None, cache: bool = True,
               idempotency_key: str | None = None, concurrency_group: str | None = None,
               cancel_in_progress: bool = False,
               callback_url: str | None = None) -> dict[str, Any]:
        """Submit request lines (OpenAI Batch input format) as one job."""
        payload: dict[str, Any] = {"requests": requests, "cache": cache}
        if callback_url:
            payload["callback_url"] = callback_url
        if tier:
            payload["tier"] = tier
        if metadata:
            payload["metadata"] = metadata
        if concurrency_group:
            payload.update(concurrency_group=concurrency_group,
                           cancel_in_progress=cancel_in_progress)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._ok(self._http.post("/api/jobs", json=payload,
                                             headers=headers)).json())

    def submit_command(self, argv: list[str], *, model: str | None = None,
                       tier: str | None = None, env: dict[str, str] | None = None,
                       grace_s: float | None = None, max_run_s: float | None = None,
                       metadata: dict[str, str] | None = None,
                       idempotency_key: str | None = None,
                       callback_url: str | None = None) -> dict[str, Any]:
        """Submit a command job: ``argv`` runs on a lent accelerator of ``model``'s pool with
        the checkpoint contract (``STOKER_CHECKPOINT_DIR``; SIGTERM, then SIGKILL after
        ``grace_s``, when its runner is reclaimed)."""
        payload: dict[str, Any] = {"argv": argv, "env": env or {}}
        optional = {"model": model, "tier": tier, "grace_s": grace_s, "max_run_s": max_run_s,
                    "metadata": metadata, "callback_url": callback_url}
        payload.update({k: v for k, v in optional.items() if v is not None})
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return dict(self._ok(self._http.post("/api/commands", json=payload,
                                             headers=headers)).json())

    def logs(self, job_id: str) -> str:
        """A command job's output so far, run by run."""
        return self._ok(self._http.get(f"/api/jobs/{job_id}/logs")).text

    def jobs(self, *, limit: int = 50) -> list[dict[str, Any]]:
        """The team's most recent jobs, newest first."""
        found = self._ok(self._http.get("/api/jobs", params={"limit": limit})).json()
        return list(found["data"])

    def job(self, job_id: str, *, wait_s: float = 0.0) -> dict[str, Any]:
        """A job's status and counts; ``wait_s`` holds the call until it finishes (long-poll)."""
        params = {"wait_s": f"{wait_s:.3f}"} if wait_s > 0 else {}
        return dict(self._ok(self._http.get(f"/api/jobs/{job_id}", params=params,
                                            timeout=wait_s + 30)).json())

    def results(self, job_id: str) -> list[dict[str, Any]]:
        """The job's finished result lines, in submission order."""
        text = self._ok(self._http.get(f"/api/jobs/{job_id}/results")).text
        return [json.loads(line) for _, line in jsonl_lines(text)]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job's queued requests."""
        return dict(self._ok(self._http.post(f"/api/jobs/{job_id}/cancel")).json())

    def cost(self, **params: Any) -> dict[str, Any]:
        """``GET /api/cost`` with filters (team, tier, model, since, until, hours)."""
        query = {k: v for k, v in params.items() if v is not None}
        found: dict[str, Any] = self._ok(self._http.get("/api/cost", params=query)).json()
        return found

    def waste(self, **params: Any) -> dict[str, Any]:
        """``GET /api/waste`` with filters (model, since, until, hours)."""
        query = {k: v for k, v in params.items() if v is not None}
        found: dict[str, Any] = self._ok(self._http.get("/api/waste", params=query)).json()
        return found

    def runners(self, *, include_stopped: bool = False) -> list[dict[str, Any]]:
        """The pool's runners."""
        params = {"include_stopped": "true"} if include_stopped else {}
        return list(self._ok(self._http.get("/api/runners", params=params)).json()["data"])

    def pool(self, *, decisions: int = 20) -> list[dict[str, Any]]:
        """Each model pool: its sizing, runners by state, the autoscaler's latest decisions."""
        r = self._ok(self._http.get("/api/pool", params={"decisions": decisions}))
        return list(r.json()["data"])

    def roll(self, model: str, path: str, *, revision: str | None = None) -> dict[str, Any]:
        """Start a rolling update of ``model``'s pool to the checkpoint at ``path``."""
        body = {"path": path, **({"revision": revision} if revision else {})}
        return dict(self._ok(self._http.post(f"/api/pool/{model}/roll", json=body)).json())

    def wait(self, job_id: str, *, timeout_s: float = 3600.0, update_s: float = 30.0,
             on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Long-poll until the job is finished, calling ``on_progress`` at least every
        ``update_s``; raises TimeoutError past ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        job = self.job(job_id)
        while True:
            if on_progress is not None:
                on_progress(job)
            if JobStatus(job["status"]) in JOB_TERMINAL:
                return job
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} not finished after {timeout_s:.0f}s")
            job = self.job(job_id, wait_s=min(update_s, remaining, 60.0))
