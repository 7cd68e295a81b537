"""Job completion callbacks: the URL check at submission, and the sender that POSTs each
finished job, signed with its team's secret, retrying with backoff.

A callback URL is a way to make the server send requests, so it may reach only public
addresses unless the operator allows a network (``callbacks.allowed_networks``). The host is
resolved and every address checked when the job is submitted and again at each delivery, and
the delivery connects to the address that was checked (not to a second lookup's answer), so a
name that later resolves to an internal address gets nowhere. Redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx
from starlette.concurrency import run_in_threadpool

from stoker.api.render import job_json
from stoker.api.services import Services
from stoker.core.callbacks import (
    SIGNATURE_HEADER,
    CallbackPolicy,
    address_refusal,
    retry_delay_s,
    signature,
)
from stoker.errors import InvalidRequest
from stoker.store import DueCallback

log = logging.getLogger(__name__)

EVENT = "job.finished"
_MAX_URL_CHARS = 2048


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery goes: the checked address, and the URL's own host for the Host
    header and TLS."""

    url: str
    host: str
    address: str


class CallbackRefused(Exception):
    """A callback URL that may not be called, with why; ``lasting``: it never will be (a
    host that does not resolve now may later)."""

    def __init__(self, why: str, *, lasting: bool = True) -> None:
        super().__init__(why)
        self.lasting = lasting


def _host_and_port(url: str) -> tuple[str, int]:
    if len(url) > _MAX_URL_CHARS:
        raise CallbackRefused(f"is longer than {_MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackRefused("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("must not carry credentials (user:password@); the body is "
                              "signed, check its X-Stoker-Signature instead")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise CallbackRefused("has an invalid port") from None
    return parts.hostname, port


async def resolve_target(url: str, policy: CallbackPolicy) -> Target:
    """The address a delivery to ``url`` connects to, after checking every address its host
    resolves to. Raises CallbackRefused."""
    host, port = _host_and_port(url)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except OSError:
        raise CallbackRefused(f"names host {host!r}, which does not resolve",
                              lasting=False) from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    for address in addresses:
        refusal = address_refusal(address, policy)
        if refusal is not None:
            raise CallbackRefused(f"resolves to {refusal}")
    return Target(url, host, str(addresses[0]))


async def check_callback_url(svc: Services, team: str, url: str) -> None:
    """Refuse, as a 400 naming ``callback_url``, a callback the server may not make."""
    if svc.teams.webhook_secret(team) is None:
        where = (f"teams.{team}.webhook_secret" if svc.teams.configured else
                 "callbacks.secret")
        raise InvalidRequest(f"team {team!r} has no webhook secret to sign callbacks with; "
                             f"the operator sets {where} (or its _env twin)",
                             param="callback_url")
    try:
        await resolve_target(url, svc.settings.callbacks.policy())
    except CallbackRefused as refused:
        raise InvalidRequest(f"callback_url {refused}", param="callback_url") from None


def pinned_request(target: Target, body: bytes, headers: dict[str, str]) -> httpx.Request:
    """A POST to the checked address, with the URL's host in the Host header (and for TLS,
    in SNI and the certificate check)."""
    parts = urlsplit(target.url)
    address = f"[{target.address}]" if ":" in target.address else target.address
    netloc = f"{address}:{parts.port}" if parts.port else address
    request = httpx.Request("POST", urlunsplit(parts._replace(netloc=netloc)), content=body,
                            headers={**headers, "Host": parts.netloc.rpartition("@")[2]})
    if parts.scheme == "https":
        request.extensions["sni_hostname"] = target.host
    return request


class CallbackSender:
    """Delivers due callbacks: one pass every ``interval_s`` (a read, and a write only when
    something is due: finishing batches does not wake it, so it adds no writes to them)."""

    def __init__(self, svc: Services, *, interval_s: float = 1.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._svc = svc
        self._interval_s = interval_s
        settings = svc.settings.callbacks
        self._policy = settings.policy()
        self._timeout_s = settings.timeout_s
        self._client = httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False,
                                         transport=transport, trust_env=False)

    async def run(self) -> None:
        """Deliver until cancelled."""
        try:
            while True:
                try:
                    await self.deliver_due()
                except Exception:
                    log.exception("callback pass failed; trying again")
                await asyncio.sleep(self._interval_s)
        finally:
            await self._client.aclose()

    async def deliver_due(self) -> int:
        """Send every callback due now; returns how many were tried."""
        svc = self._svc
        if not await run_in_threadpool(svc.store.callbacks_due, now=svc.clock.now()):
            return 0
        due = await run_in_threadpool(svc.store.claim_due_callbacks, now=svc.clock.now(),
                                      hold_s=self._timeout_s + 30.0)
        await asyncio.gather(*(self._deliver(callback) for callback in due))
        return len(due)

    async def _deliver(self, callback: DueCallback) -> None:
        svc = self._svc
        attempt = callback.attempts + 1
        failure = await self._send(callback, attempt)
        now = svc.clock.now()
        if failure is None:
            await run_in_threadpool(svc.store.record_callback_delivered, callback.job_id, now=now)
            return
        error, retryable = failure
        delay_s = retry_delay_s(attempt, self._policy) if retryable else None
        log.warning("callback for job %s failed (attempt %d): %s; %s", callback.job_id,
                    attempt, error, "giving up" if delay_s is None else f"retry in {delay_s:.0f}s")
        await run_in_threadpool(svc.store.record_callback_failed, callback.job_id, error=error,
                                retry_at=None if delay_s is None else now + delay_s, now=now)

    async def _send(self, callback: DueCallback, attempt: int) -> tuple[str, bool] | None:
        """None when the receiver took it, else what went wrong (never the URL: it may
        carry a token of the receiver's) and whether it is worth trying again."""
        svc = self._svc
        job = await run_in_threadpool(svc.store.get_job, callback.job_id)
        secret = svc.teams.webhook_secret(job.team)
        if secret is None:
            return "the team has no webhook secret any more", False
        body = json.dumps({"event": EVENT, "delivery_id": callback.job_id, "attempt": attempt,
                           "sent_at": svc.clock.now(), "job": job_json(job)},
                          separators=(",", ":")).encode("utf-8")
        try:
            target = await resolve_target(callback.url, self._policy)
        except CallbackRefused as refused:
            return f"the URL {refused}", not refused.lasting
        headers = {"Content-Type": "application/json", "User-Agent": "stoker-callbacks",
                   SIGNATURE_HEADER: signature(secret, body), "X-Stoker-Event": EVENT,
                   "X-Stoker-Delivery": callback.job_id}
        try:
            response = await self._client.send(pinned_request(target, body, headers))
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: could not reach {target.host}", True
        if 200 <= response.status_code < 300:
            return None
        return f"{target.host} answered HTTP {response.status_code}", True


