"""Admission control: per-team quotas and a per-team circuit breaker, as one pure decision.

Checked in this order, before anything of a submission is stored:
1. the circuit breaker: a team over ``max_submissions`` per ``window_s`` is refused for
   ``cooldown_s`` (other teams are unaffected); its window starts again when the cooldown
   ends;
2. ``max_queued_requests``: queued plus submitted may not exceed it;
3. ``tokens_per_day``: generated tokens so far this UTC day;
4. ``requests_per_minute``: a token bucket holding up to one minute's requests.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

QUEUE_FULL_RETRY_S = 30.0
DAY_S = 86_400.0


@dataclass(frozen=True, slots=True)
class TeamQuota:
    """A team's limits; None means unlimited."""

    max_queued_requests: int | None = None
    requests_per_minute: int | None = None
    tokens_per_day: int | None = None


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    """Trip after more than ``max_submissions`` in ``window_s``; stay open ``cooldown_s``."""

    max_submissions: int
    window_s: float
    cooldown_s: float


@dataclass(frozen=True, slots=True)
class AdmissionState:
    """What admission remembers about one team between submissions."""

    bucket: float
    bucket_at: float
    window_start: float
    window_submissions: int
    tripped_until: float


@dataclass(frozen=True, slots=True)
class TeamLoad:
    """What the team has in the system right now."""

    queued: int
    tokens_today: int


@dataclass(frozen=True, slots=True)
class Admit:
    """The submission may be stored."""


@dataclass(frozen=True, slots=True)
class Refuse:
    """The submission is refused; ``permanent`` means retrying the same thing cannot work."""

    quota: str
    message: str
    retry_after_s: float
    permanent: bool = False


AdmissionDecision = Admit | Refuse


def initial_state(quota: TeamQuota, *, now: float) -> AdmissionState:
    """A team's state before its first submission: a full bucket, a fresh window."""
    return AdmissionState(float(quota.requests_per_minute or 0), now, now, 0, 0.0)


def admit(requests: int, load: TeamLoad, state: AdmissionState, quota: TeamQuota,
          breaker: BreakerConfig | None, *, team: str, now: float
          ) -> tuple[AdmissionDecision, AdmissionState]:
    """Decide whether ``team`` may submit ``requests`` more requests now."""
    if breaker is not None:
        refusal, state = _breaker(state, breaker, team=team, now=now)
        if refusal is not None:
            return refusal, state
    if quota.max_queued_requests is not None and load.queued + requests > quota.max_queued_requests:
        return Refuse(
            "max_queued_requests",
            f"team {team!r} has {load.queued} requests queued; {requests} more would pass its "
            f"max_queued_requests quota of {quota.max_queued_requests}",
            QUEUE_FULL_RETRY_S,
            permanent=requests > quota.max_queued_requests,
        ), state
    if quota.tokens_per_day is not None and load.tokens_today >= quota.tokens_per_day:
        return Refuse(
            "tokens_per_day",
            f"team {team!r} has used {load.tokens_today} of its tokens_per_day quota of "
            f"{quota.tokens_per_day} generated tokens; it resets at 00:00 UTC",
            DAY_S - now % DAY_S,
        ), state
    if quota.requests_per_minute is not None:
        return _bucket(requests, state, quota.requests_per_minute, team=team, now=now)
    return Admit(), state


def _breaker(state: AdmissionState, config: BreakerConfig, *, team: str, now: float
             ) -> tuple[Refuse | None, AdmissionState]:
    if now < state.tripped_until:
        return _tripped(state, config, team, now), state
    if now - state.window_start >= config.window_s:
        state = replace(state, window_start=now, window_submissions=0)
    state = replace(state, window_submissions=state.window_submissions + 1)
    if state.window_submissions > config.max_submissions:
        # The count starts afresh when the cooldown ends: a client that waits out its
        # Retry-After is admitted then, not refused again for submissions made before.
        until = now + config.cooldown_s
        state = replace(state, tripped_until=until, window_start=until, window_submissions=0)
        return _tripped(state, config, team, now), state
    return None, state


def _tripped(state: AdmissionState, config: BreakerConfig, team: str, now: float) -> Refuse:
    return Refuse(
        "circuit_breaker",
        f"team {team!r} submitted more than {config.max_submissions} jobs in "
        f"{config.window_s:g}s; its submissions are paused for {config.cooldown_s:g}s",
        state.tripped_until - now,
    )


def _bucket(requests: int, state: AdmissionState, per_minute: int, *, team: str, now: float
            ) -> tuple[AdmissionDecision, AdmissionState]:
    rate = per_minute / 60.0
    level = min(float(per_minute), state.bucket + max(0.0, now - state.bucket_at) * rate)
    state = replace(state, bucket=level, bucket_at=now)
    if requests > per_minute:
        return Refuse(
            "requests_per_minute",
            f"a job of {requests} requests can never fit team {team!r}'s requests_per_minute "
            f"quota of {per_minute}; split it into smaller jobs",
            60.0, permanent=True,
        ), state
    if level < requests:
        return Refuse(
            "requests_per_minute",
            f"team {team!r} is over its requests_per_minute quota of {per_minute}",
            (requests - level) / rate,
        ), state
    return Admit(), replace(state, bucket=level - requests)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Where a team stands against its rate quotas, as OpenAI's ``x-ratelimit-*`` headers
    report it: for requests (``requests_per_minute``) and generated tokens
    (``tokens_per_day``), the limit, what is left now and the seconds until all of it is
    back; None for a quota the team does not have."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    reset_requests_s: float | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None
    reset_tokens_s: float | None = None


def rate_limits(quota: TeamQuota, load: TeamLoad, state: AdmissionState | None, *,
                now: float) -> RateLimits:
    """``quota`` against what the team has used (``load``, ``state``) at ``now``."""
    limits = RateLimits()
    per_minute = quota.requests_per_minute
    if per_minute is not None:
        state = state or initial_state(quota, now=now)
        rate = per_minute / 60.0
        level = min(float(per_minute), state.bucket + max(0.0, now - state.bucket_at) * rate)
        limits = replace(limits, limit_requests=per_minute, remaining_requests=int(level),
                         reset_requests_s=(per_minute - level) / rate)
    if quota.tokens_per_day is not None:
        limits = replace(limits, limit_tokens=quota.tokens_per_day,
                         remaining_tokens=max(0, quota.tokens_per_day - load.tokens_today),
                         reset_tokens_s=DAY_S - now % DAY_S)
    return limits
