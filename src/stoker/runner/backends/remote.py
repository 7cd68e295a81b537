"""Backends that send each input of a batch to a provider's HTTP API, concurrently.

The key is held by the backend, sent only to the configured ``base_url`` (redirects are not
followed) and scrubbed from any text that leaves it. Provider 429s, 5xx answers and dropped
connections are retried with exponential backoff (``Retry-After`` honoured) and counted; once
the tries run out the input fails as retryable, so the queue's attempt limit decides.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from stoker.runner.backends.protocol import GenerationInput, GenerationOutput

# Providers enforce their own context limits; their 400 comes back as the input's error.
UNBOUNDED_CONTEXT = 1 << 30
_MAX_ERROR_CHARS = 300
#: A credential header (or key field) a provider reflects back in an error body.
_ECHOED_CREDENTIAL = re.compile(
    r"((?:authorization|x-api-key|api[-_]?key|bearer)[\"']?\s*[:=]?\s*[\"']?)"
    r"(?:bearer\s+)?[^\s\"',;}]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RemoteEndpoint:
    """Where a remote model lives and how to talk to it."""

    base_url: str
    remote_model: str
    api_key: str | None = field(default=None, repr=False)
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 4
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0


@dataclass(frozen=True, slots=True)
class ProviderCall:
    """One HTTP request to the provider: path under ``base_url``, JSON body, extra headers."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class ProviderRefused(Exception):
    """The provider's answer cannot be used (bad shape); not retried."""


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` in it (in any case), nor any credential header a provider
    echoed back, and short enough for a log line or an error."""
    if secret:
        text = re.sub(re.escape(secret), "[redacted]", text, flags=re.IGNORECASE)
    text = _ECHOED_CREDENTIAL.sub(r"\1[redacted]", text)
    return text[:_MAX_ERROR_CHARS]


def retry_delay_s(attempt: int, retry_after: str | None, endpoint: RemoteEndpoint) -> float:
    """How long to wait before try ``attempt + 1``: Retry-After if given, else exponential
    backoff with jitter, capped."""
    if retry_after is not None:
        try:
            return min(endpoint.max_backoff_s, max(0.0, float(retry_after)))
        except ValueError:
            pass
    base: float = endpoint.backoff_s * 2.0 ** attempt
    return min(endpoint.max_backoff_s, base * (0.5 + random.random()))


class RemoteBackend:
    """The shared part: concurrency, retries, key handling. Subclasses shape the calls."""

    def __init__(self, endpoint: RemoteEndpoint, *, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.endpoint = endpoint
        self._http = http or httpx.Client(
            base_url=endpoint.base_url.rstrip("/"), timeout=endpoint.timeout_s,
            follow_redirects=False, trust_env=False,
            limits=httpx.Limits(max_connections=endpoint.max_concurrency))
        self._pool = ThreadPoolExecutor(max_workers=endpoint.max_concurrency,
                                        thread_name_prefix="provider")
        self._sleep = sleep

    @property
    def max_context_tokens(self) -> int:
        """Unbounded here: the provider checks, and its refusal is the input's error."""
        return UNBOUNDED_CONTEXT

    def generate(self, inputs: Sequence[GenerationInput]) -> list[GenerationOutput]:
        """Send every input at once (up to ``max_concurrency`` in flight)."""
        return list(self._pool.map(self._generate_one, inputs))

    def close(self) -> None:
        """Stop the worker threads and close connections."""
        self._pool.shutdown(wait=True)
        self._http.close()

    # -- to be shaped by each provider -----------------------------------------------------

    def build_call(self, spec: GenerationInput) -> ProviderCall:
        """The provider request for one input."""
        raise NotImplementedError

    def parse_answer(self, data: Any) -> GenerationOutput:
        """A GenerationOutput from the provider's JSON answer (raise ProviderRefused)."""
        raise NotImplementedError

    def error_message(self, data: Any) -> str | None:
        """The provider's own error message, if its error body has one."""
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return message if isinstance(message, str) else None

    # -- the retry loop --------------------------------------------------------------------

    def _generate_one(self, spec: GenerationInput) -> GenerationOutput:
        try:
            call = self.build_call(spec)
        except ProviderRefused as exc:
            return GenerationOutput("", "error", 0, 0, error=str(exc))
        key = self.endpoint.api_key
        rate_limited = 0
        problem = "no answer"
        retry_after: str | None = None
        for attempt in range(self.endpoint.max_retries + 1):
            if attempt:
                self._sleep(retry_delay_s(attempt - 1, retry_after, self.endpoint))
            retry_after = None
            try:
                response = self._http.post(call.path, json=call.body, headers=call.headers)
            except httpx.HTTPError as exc:
                problem = f"provider unreachable ({type(exc).__name__})"
                continue
            status = response.status_code
            if status == 429:
                rate_limited += 1
                retry_after = response.headers.get("retry-after")
                problem = "provider rate limit (429)"
                continue
            if status >= 500:
                problem = f"provider error ({status})"
                continue
            return self._answer(response, rate_limited, key)
        return GenerationOutput("", "error", 0, 0, retryable=True, rate_limited=rate_limited,
                                error=f"{problem}; gave up after "
                                      f"{self.endpoint.max_retries + 1} tries")

    def _answer(self, response: httpx.Response, rate_limited: int,
                key: str | None) -> GenerationOutput:
        status = response.status_code
        try:
            data = response.json()
        except ValueError:
            data = None
        if 300 <= status < 400:
            return GenerationOutput("", "error", 0, 0, retryable=True, rate_limited=rate_limited,
                                    error=f"provider answered {status} (a redirect, which is "
                                          "not followed: check base_url)")
        if status in (401, 403):
            return GenerationOutput("", "error", 0, 0, retryable=True, rate_limited=rate_limited,
                                    error=f"provider refused the credentials ({status}): check "
                                          "the model's api key")
        if status >= 400:
            detail = scrub(self.error_message(data) or response.text, key)
            return GenerationOutput("", "error", 0, 0, rate_limited=rate_limited,
                                    error=f"provider refused the request ({status}): {detail}")
        try:
            out = self.parse_answer(data)
        except (ProviderRefused, KeyError, IndexError, TypeError) as exc:
            return GenerationOutput("", "error", 0, 0, retryable=True, rate_limited=rate_limited,
                                    error=f"provider answer not understood: "
                                          f"{scrub(str(exc), key)}")
        return dataclasses.replace(out, rate_limited=rate_limited)
