"""The runner's side of the runner protocol: plain HTTP to the control plane.

Connection failures and 5xx answers are retried with capped exponential backoff, moving to the
next API replica when several are given, so a runner rides out a replica dying or restarting;
the server's calls are idempotent where that matters (completion).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from stoker.core.continuous import TopUp

log = logging.getLogger("stoker.runner")


class LeaseGone(Exception):
    """The server no longer holds our lease (it expired); our results may still be recorded."""


class RunnerGone(Exception):
    """The server has stopped this runner (e.g. it was marked lost); the process should exit."""


@dataclass(frozen=True, slots=True)
class LeasedWork:
    """A batch handed to this runner."""

    lease_id: str
    expires_at: float
    requests: list[dict[str, Any]]


class ControlPlaneClient:
    """Talks to one Stoker server on behalf of one runner."""

    def __init__(self, server: str, *, token: str | None, stop: threading.Event) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._servers = [s.strip().rstrip("/") for s in server.split(",") if s.strip()]
        self._current = 0
        self._http = httpx.Client(headers=headers, timeout=30.0)
        self._stop = stop
        self.runner_id = ""

    def _failover(self) -> None:
        self._current = (self._current + 1) % len(self._servers)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def _call(self, path: str, payload: dict[str, Any], *, timeout: float = 30.0,
              retry: bool = True) -> dict[str, Any]:
        delay = 0.1
        while True:
            url = self._servers[self._current] + path
            try:
                response = self._http.post(url, json=payload, timeout=timeout)
            except httpx.TransportError as exc:
                self._failover()
                if not retry or (self._stop.is_set() and delay > 2):
                    raise
                log.warning("control plane unreachable (%s); retrying in %.1fs", exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            if response.status_code >= 500 and retry:
                log.warning("control plane answered %s; retrying", response.status_code)
                self._failover()
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            return self._check(response)

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code < 400:
            return dict(response.json())
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        code = error.get("code", "")
        message = error.get("message", response.text[:200])
        if code == "lease_lost":
            raise LeaseGone(message)
        if response.status_code in (404, 409) and "runner" in message:
            raise RunnerGone(message)
        raise RuntimeError(f"control plane refused: {response.status_code} {message}")

    def register(self, *, name: str, model: str, pid: int, host: str,
                 max_batch_size: int | None, launched_at: float | None = None,
                 replica: str | None = None) -> dict[str, Any]:
        """Register; returns the server's terms (lease TTL, heartbeat interval, batch size).
        ``launched_at``: when this process started, so its cold start counts from then;
        ``replica``: the lent replica whose API it calls."""
        body = {"name": name, "model": model, "pid": pid, "host": host,
                "max_batch_size": max_batch_size, "launched_at": launched_at}
        if replica is not None:
            body["replica"] = replica
        reply = self._call("/api/runners", body)
        self.runner_id = str(reply["runner"]["id"])
        return reply

    def set_state(self, state: str) -> None:
        """Report a state change (idle after loading, draining, stopped)."""
        self._call(f"/api/runners/{self.runner_id}/state", {"state": state})

    def lease(self, wait_s: float, top_up: TopUp | None = None
              ) -> tuple[LeasedWork | None, bool]:
        """Long-poll for a batch (or, continuous, for ``top_up``'s rows); returns (work or
        None, whether the server says drain)."""
        payload: dict[str, Any] = {"wait_s": wait_s}
        if top_up is not None:
            payload["top_up"] = {"max_rows": top_up.max_rows, "online_only": top_up.online_only,
                                 "loop_running": top_up.loop_running}
        reply = self._call(f"/api/runners/{self.runner_id}/lease", payload,
                           timeout=wait_s + 30.0)
        lease = reply.get("lease")
        work = None
        if lease is not None:
            work = LeasedWork(lease["id"], lease["expires_at"], list(reply["requests"]))
        return work, bool(reply.get("draining", False))

    def heartbeat(self, lease_ids: list[str]) -> dict[str, Any]:
        """Renew our leases and say we are alive; returns lost leases and the drain flag."""
        return self._call(f"/api/runners/{self.runner_id}/heartbeat", {"lease_ids": lease_ids},
                          timeout=10.0, retry=False)

    def report(self, lease_id: str, report_id: str, started_at: float, ended_at: float,
               results: list[dict[str, Any]], *, rows: int | None = None,
               returned: list[str] | None = None) -> dict[str, Any]:
        """Report some of a lease's results as they finish (continuous batching), with how
        many rows decoded together meanwhile, and the rows dropped for online work. Safe to
        repeat: the server records a ``report_id`` once."""
        body: dict[str, Any] = {"lease_id": lease_id, "report_id": report_id, "rows": rows,
                                "started_at": started_at, "ended_at": ended_at,
                                "results": results}
        if returned:
            body["returned"] = returned
        return self._call(f"/api/runners/{self.runner_id}/report", body)

    def progress(self, texts: dict[str, str]) -> None:
        """The text streamed requests have so far; lost on failure (the result has it all)."""
        self._call(f"/api/runners/{self.runner_id}/progress", {"texts": texts},
                   timeout=5.0, retry=False)

    def complete(self, lease_id: str, started_at: float, ended_at: float,
                 results: list[dict[str, Any]], *, provider_rate_limits: int = 0,
                 returned: list[str] | None = None) -> dict[str, Any]:
        """Report a batch's results (and the requests handed back for online work). Safe to
        repeat: the first result for a request wins."""
        body: dict[str, Any] = {"lease_id": lease_id, "started_at": started_at,
                                "ended_at": ended_at, "results": results,
                                "provider_rate_limits": provider_rate_limits}
        if returned:
            body["returned"] = returned
        return self._call(f"/api/runners/{self.runner_id}/complete", body)

    def ship_log(self, request_id: str, text: str) -> None:
        """Send the next piece of a running command's output; LeaseGone once the server no
        longer holds the command for us."""
        self._call(f"/api/runners/{self.runner_id}/logs",
                   {"request_id": request_id, "text": text}, timeout=10.0)
