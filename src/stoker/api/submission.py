"""Putting validated work in the queue: the one path every way of submitting takes (native
jobs, OpenAI batches, online chat and completions), so tiers, quotas, the result cache and the
dispatcher's wake-ups apply the same everywhere."""

from __future__ import annotations

from dataclasses import replace

from starlette.concurrency import run_in_threadpool

from stoker.api.job_input import JobOptions, ParsedJob
from stoker.api.result_cache import cache_key
from stoker.api.services import Services
from stoker.core.admission import AdmissionDecision, AdmissionState, TeamLoad, admit, initial_state
from stoker.core.model import Tier
from stoker.errors import RateLimited, Unprocessable
from stoker.store import NewBatch, NewJob, Submission


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


async def enqueue(svc: Services, *, team: str, tier: Tier, parsed: ParsedJob,
                  options: JobOptions, idempotency_key: str | None = None,
                  batch: NewBatch | None = None) -> Submission:
    """Admit and store a job (with its OpenAI batch, if any), then wake a runner for it."""
    policy = svc.teams.policy(team)
    revision = svc.revisions[parsed.model]
    now = svc.clock.now()

    def check(load: TeamLoad, state: AdmissionState | None
              ) -> tuple[AdmissionDecision, AdmissionState]:
        current = state or initial_state(policy.quota, now=now)
        return admit(len(parsed.requests), load, current, policy.quota, policy.breaker,
                     team=team, now=now)

    def store() -> Submission:
        # Fingerprinting every request hashes its body: done in the worker thread too.
        new_job = NewJob(
            team=team, tier=tier.name, priority=tier.priority, model=parsed.model,
            requests=[replace(r, cache_key=cache_key(policy.cache_scope, parsed.model,
                                                     revision, r.endpoint, r.body))
                      for r in parsed.requests],
            max_attempts=svc.settings.leases.max_attempts, metadata=options.metadata,
            idempotency_key=idempotency_key, concurrency_group=options.concurrency_group,
            cancel_in_progress=options.cancel_in_progress, use_cache=options.cache,
            batch=batch,
        )
        return svc.store.submit_job(new_job, now=now, admission=check)

    try:
        submitted = await run_in_threadpool(store)
    except RateLimited:
        svc.metrics.rejected.labels(team).inc()
        raise
    svc.dispatcher.notify_work(submitted.job.model, submitted.job.counts.queued)
    if submitted.superseded:
        svc.dispatcher.notify_progress()
    return submitted
