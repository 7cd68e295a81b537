"""The default tiers: online > smoke > regression > batch > best_effort."""

from __future__ import annotations

from stoker.core.model import Tier

DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("online", priority=100, drain_target_s=10.0),
    Tier("smoke", priority=80, max_prompts=10, drain_target_s=120.0),
    Tier("regression", priority=60, max_prompts=500, drain_target_s=600.0),
    Tier("batch", priority=40, drain_target_s=3600.0),
    Tier("best_effort", priority=20, preemptible=True, drain_target_s=86_400.0),
)


#: OpenAI's ``service_tier`` values: ``flex`` asks for cheaper, slower service; the others ask
#: for the normal synchronous kind (``auto`` leaves it to the caller's default).
SERVICE_TIERS = ("auto", "default", "priority", "flex")


def sync_call_tier(*, asked_tier: str | None, service_tier: str | None, team_default: str,
                   online_tier: str, flex_tier: str) -> str | None:
    """The tier of a synchronous call (``/v1/chat/completions`` and the like): the tier the
    caller names (``X-Stoker-Tier``), else what its ``service_tier`` asks for (``priority``
    and ``default`` the online tier, ``flex`` the flex tier), else the team's default.
    None when ``service_tier`` is not one of :data:`SERVICE_TIERS`."""
    if asked_tier:
        return asked_tier
    if service_tier is None or service_tier == "auto":
        return team_default
    if service_tier in ("default", "priority"):
        return online_tier
    if service_tier == "flex":
        return flex_tier
    return None
