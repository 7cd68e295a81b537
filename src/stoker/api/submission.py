"""Putting validated work in the queue: the one path every way of submitting takes (native
jobs, OpenAI batches, online chat and completions), so tiers, quotas, the result cache and the
dispatcher's wake-ups apply the same everywhere."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

from starlette.concurrency import run_in_threadpool

from stoker.api.callbacks import check_callback_url
from stoker.api.job_input import JobOptions, ParsedJob, RequestsReadBack, canonical_line
from stoker.api.result_cache import cache_key
from stoker.api.services import Services, current_checkpoint
from stoker.core.admission import AdmissionDecision, AdmissionState, TeamLoad, admit, initial_state
from stoker.core.model import Tier
from stoker.errors import InvalidRequest, RateLimited, Unprocessable
from stoker.openai_format import token_budget
from stoker.store import NewBatch, NewJob, NewRequest, Submission


def tier_for(svc: Services, team: str, name: str | None, prompts: int) -> Tier:
    """The tier a submission goes to: known, allowed for the team, within its prompt limit."""
    tier_name = name or svc.settings.scheduling.default_tier
    tier = svc.tiers.get(tier_name)
    if tier is None:
        raise Unprocessable(f"unknown tier {tier_name!r}; tiers: {', '.join(svc.tiers)}")
    svc.teams.policy(team).check_tier(tier.name)
    if tier.max_prompts is not None and prompts > tier.max_prompts:
        raise Unprocessable(f"tier {tier.name!r} takes at most {tier.max_prompts} prompts per "
                            f"job; this job has {prompts}. Use a larger tier or split the job")
    return tier


def fingerprint(tier: Tier, parsed: ParsedJob, options: JobOptions) -> str:
    """A digest of everything a submission asks for, to tell a repeat from new work (taken
    request by request: a big upload is never held whole)."""
    digest = hashlib.sha256()
    asked = options.model_dump(exclude={"tier"})
    # Options at their default are left out, as before they existed: old fingerprints match.
    for name, default in (("pin_revision", False), ("expires_after_s", None),
                          ("callback_url", None)):
        if asked[name] == default:
            del asked[name]
    head = [tier.name, parsed.model, asked]
    requests = parsed.requests
    lines = (requests.canonical_lines() if isinstance(requests, RequestsReadBack)
             else (canonical_line(r) for r in requests))
    for line in itertools.chain([json.dumps(head, sort_keys=True, ensure_ascii=False,
                                            separators=(",", ":")).encode("utf-8")], lines):
        digest.update(line)
        digest.update(b"\n")
    return digest.hexdigest()


class KeyedRequests(RequestsReadBack):
    """Requests with their result-cache fingerprints, made as each is read."""

    def __init__(self, requests: Sequence[NewRequest], scope: str, model: str,
                 revision: str) -> None:
        self._requests, self._key = requests, (scope, model, revision)

    def __len__(self) -> int:
        return len(self._requests)

    def _at(self, index: int) -> NewRequest:
        return self._keyed(self._requests[index])

    def __iter__(self) -> Iterator[NewRequest]:
        return (self._keyed(r) for r in self._requests)

    def _keyed(self, request: NewRequest) -> NewRequest:
        scope, model, revision = self._key
        return replace(request, cache_key=cache_key(scope, model, revision, request.endpoint,
                                                    request.body))


def over_token_limit(body: dict[str, Any], limit: int) -> str | None:
    """Why a request asks for more new tokens than its model gives, or None."""
    asked = token_budget(body)
    if asked <= limit:
        return None
    return (f"max_tokens {asked} is past the model's limit of {limit} new tokens; ask for "
            f"at most {limit}")


def check_token_budgets(svc: Services, parsed: ParsedJob) -> None:
    """Refuse, before anything is stored, a request asking for more tokens than its model
    may generate (it could only fail later, line by line)."""
    if parsed.queue is not None:
        return  # a command job generates no tokens
    limit = svc.settings.models[parsed.model].max_new_tokens
    requests = parsed.requests
    most = requests.most_tokens_asked() if isinstance(requests, RequestsReadBack) else None
    if most is not None and most <= limit:
        return  # measured as the upload was validated: no need to read it all again
    for request in requests:
        problem = over_token_limit(request.body, limit)
        if problem is not None:
            raise InvalidRequest(f"request {request.custom_id!r}: {problem}")


async def enqueue(svc: Services, *, team: str, tier: Tier, parsed: ParsedJob,
                  options: JobOptions, idempotency_key: str | None = None,
                  batch: NewBatch | None = None) -> Submission:
    """Admit and store a job (with its OpenAI batch, if any), then wake a runner for it."""
    policy = svc.teams.policy(team)
    if options.callback_url is not None:
        await check_callback_url(svc, team, options.callback_url)
    now = svc.clock.now()

    def check(load: TeamLoad, state: AdmissionState | None
              ) -> tuple[AdmissionDecision, AdmissionState]:
        current = state or initial_state(policy.quota, now=now)
        return admit(len(parsed.requests), load, current, policy.quota, policy.breaker,
                     team=team, now=now)

    def store() -> Submission:
        # Walking every request (token limits, fingerprints) is done in the worker thread:
        # a 100,000-line job would hold the event loop for a second.
        check_token_budgets(svc, parsed)
        checkpoint = current_checkpoint(svc, parsed.model)
        # While a roll is under way either revision may answer: no cache either way.
        use_cache = options.cache and not checkpoint.rolling
        # Fingerprints only for a job that uses the cache (its rows keep none otherwise).
        requests = KeyedRequests(parsed.requests, policy.cache_scope, parsed.model,
                                 checkpoint.revision) if use_cache else parsed.requests
        new_job = NewJob(
            team=team, tier=tier.name, priority=tier.priority, model=parsed.model,
            requests=requests,
            max_attempts=svc.settings.leases.max_attempts, metadata=options.metadata,
            idempotency_key=idempotency_key, concurrency_group=options.concurrency_group,
            cancel_in_progress=options.cancel_in_progress, use_cache=use_cache,
            batch=batch, fingerprint=fingerprint(tier, parsed, options),
            revision=checkpoint.revision if options.pin_revision else None,
            expires_after_s=options.expires_after_s, callback_url=options.callback_url,
            queue=parsed.queue,
        )
        return svc.store.submit_job(new_job, now=now, admission=check)

    try:
        submitted = await run_in_threadpool(store)
    except RateLimited:
        svc.metrics.rejected.labels(team).inc()
        raise
    svc.dispatcher.notify_work(submitted.job.model, submitted.job.counts.queued,
                                submitted.job.tier)
    if submitted.superseded:
        svc.dispatcher.notify_progress()
    return submitted
