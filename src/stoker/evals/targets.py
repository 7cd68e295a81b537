"""Where a suite's requests are answered: Stoker (the whole suite as one job, through its
client like any user), or any OpenAI-compatible endpoint (one call per request, to compare)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from stoker.client import StokerClient


@dataclass(frozen=True, slots=True)
class Answer:
    """One request's answer: its text, or why there is none."""

    text: str | None
    error: str | None = None
    cached: bool = False


class Target(Protocol):
    """Answers request lines (OpenAI Batch input format), by custom_id."""

    def answer(self, lines: list[dict[str, Any]], *, purpose: str) -> dict[str, Answer]:
        """Every line's answer; ``purpose`` ("cases", "judge") labels the work."""
        ...


@dataclass
class StokerTarget:
    """The suite's lines as one Stoker job in ``tier``, waited for; ``identity`` gives the
    job's idempotency key and concurrency group (see :mod:`stoker.evals.ci`)."""

    client: StokerClient
    tier: str | None
    metadata: dict[str, str]
    idempotency_key: str | None = None
    concurrency_group: str | None = None
    on_progress: Callable[[dict[str, Any]], None] | None = None
    timeout_s: float = 3600.0
    #: Called when the cases' job finishes (a CI system's webhook, say).
    callback_url: str | None = None
    #: False: submit the cases' job and raise Submitted instead of waiting for it.
    wait: bool = True
    #: The jobs submitted, in order (the cases' first, then the judge's).
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, lines: list[dict[str, Any]], *, purpose: str) -> dict[str, Answer]:
        """Submit, wait, and read back the results (a superseded job raises Superseded)."""
        first = purpose == "cases"
        job = self.client.submit(
            lines, tier=self.tier, metadata={**self.metadata, "eval_purpose": purpose},
            idempotency_key=f"{self.idempotency_key}:{purpose}" if self.idempotency_key
            else None,
            concurrency_group=self.concurrency_group if first else None,
            cancel_in_progress=first and self.concurrency_group is not None,
            callback_url=self.callback_url if first else None)
        if not self.wait:
            raise Submitted(job)
        done = self.client.wait(job["id"], timeout_s=self.timeout_s, update_s=5.0,
                                on_progress=self.on_progress)
        self.jobs.append(done)
        if done.get("superseded_by"):
            raise Superseded(done["id"], done["superseded_by"])
        return {row["custom_id"]: answer_of_row(row) for row in self.client.results(job["id"])}


class Submitted(Exception):
    """The cases' job is in the queue and the caller asked not to wait for it."""

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__(f"submitted job {job['id']} ({job['status']})")
        self.job = job


class Superseded(Exception):
    """A newer run of the same suite for the same pull request cancelled this one."""

    def __init__(self, job_id: str, by: str) -> None:
        super().__init__(f"job {job_id} was superseded by job {by} (a newer commit's run)")
        self.job_id, self.by = job_id, by


def answer_of_row(row: dict[str, Any]) -> Answer:
    response = row.get("response") or {}
    if response.get("status_code") == 200:
        choice = response["body"]["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        return Answer(text or "", cached=bool(row.get("cached")))
    error = row.get("error") or (response.get("body") or {}).get("error") or {}
    return Answer(None, str(error.get("message") or "no answer"))


@dataclass
class EndpointTarget:
    """Any OpenAI-compatible API (``base_url`` ends in ``/v1``), called once per line."""

    base_url: str
    api_key: str | None = None
    concurrency: int = 8
    timeout_s: float = 120.0

    def answer(self, lines: list[dict[str, Any]], *, purpose: str) -> dict[str, Answer]:
        """Each line's answer, calls made ``concurrency`` at a time."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(base_url=self.base_url.rstrip("/"), headers=headers,
                          timeout=self.timeout_s) as http:
            def one(line: dict[str, Any]) -> tuple[str, Answer]:
                path = line["url"].removeprefix("/v1")
                try:
                    response = http.post(path, json=line["body"])
                except httpx.HTTPError as exc:
                    return line["custom_id"], Answer(None, f"{type(exc).__name__}: {exc}")
                if response.status_code != 200:
                    return line["custom_id"], Answer(
                        None, f"{response.status_code}: {response.text[:300]}")
                return line["custom_id"], answer_of_row(
                    {"response": {"status_code": 200, "body": response.json()}})

            with ThreadPoolExecutor(self.concurrency) as pool:
                return dict(pool.map(one, lines))
