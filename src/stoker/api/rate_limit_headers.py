"""OpenAI's ``x-ratelimit-*`` headers from a team's quotas, on synchronous calls (answered or
refused with 429), so clients that pace themselves by them (the SDKs' users, litellm) can."""

from __future__ import annotations

import math

from starlette.concurrency import run_in_threadpool

from stoker.api.services import Services
from stoker.core.admission import rate_limits


def duration(seconds: float) -> str:
    """A time as OpenAI writes it in these headers: ``250ms``, ``1s``, ``6m0s``, ``1h2m5s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


async def rate_limit_headers(svc: Services, team: str) -> dict[str, str]:
    """The headers for ``team`` now; none for a quota the team does not have."""
    quota = svc.teams.policy(team).quota
    if quota.requests_per_minute is None and quota.tokens_per_day is None:
        return {}
    now = svc.clock.now()
    load, state = await run_in_threadpool(svc.store.team_standing, team, now=now)
    limits = rate_limits(quota, load, state, now=now)
    headers = {}
    for kind in ("requests", "tokens"):
        limit = getattr(limits, f"limit_{kind}")
        if limit is None:
            continue
        headers[f"x-ratelimit-limit-{kind}"] = str(limit)
        headers[f"x-ratelimit-remaining-{kind}"] = str(getattr(limits, f"remaining_{kind}"))
        headers[f"x-ratelimit-reset-{kind}"] = duration(getattr(limits, f"reset_{kind}_s"))
    return headers
