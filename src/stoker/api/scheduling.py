"""Settings turned into the core scheduling policy: tiers and fair-share weights."""

from __future__ import annotations

from stoker.core.batching import SchedulingPolicy
from stoker.core.lending import OnlineReserve
from stoker.core.model import Tier
from stoker.core.tiers import DEFAULT_TIERS
from stoker.core.windows import DispatchWindow
from stoker.settings import Settings


def build_tiers(settings: Settings) -> dict[str, Tier]:
    """The default tiers, each replaced or joined by the config's tiers of the same name."""
    tiers = {t.name: t for t in DEFAULT_TIERS}
    for name, spec in settings.tiers.items():
        window = None
        if spec.window is not None:
            window = DispatchWindow(spec.window.start, spec.window.end, spec.window.timezone)
        tiers[name] = Tier(name, spec.priority, spec.max_prompts, spec.preemptible, window,
                           spec.run_outside_window_when_idle,
                           spec.drain_target_s or _default_drain_target_s(tiers.get(name)))
    return tiers


def _default_drain_target_s(tier: Tier | None) -> float:
    return tier.drain_target_s if tier is not None else 3600.0


def build_policy(settings: Settings, tiers: dict[str, Tier],
                 weights: dict[str, float]) -> SchedulingPolicy:
    """The scheduling policy in force."""
    sched = settings.scheduling
    ceiling = tiers[sched.starvation_ceiling_tier].priority if sched.starvation_ceiling_tier \
        else None
    return SchedulingPolicy(tiers=tiers, team_weights=weights,
                            starvation_age_s=sched.starvation_age_s, starvation_ceiling=ceiling,
                            online_tier=sched.online_tier)


def online_reserve(settings: Settings, model: str) -> OnlineReserve | None:
    """The runners of ``model``'s pool kept free for online work (None: none kept)."""
    spec = settings.models.get(model)
    if spec is None or spec.online_reserve is None:
        return None
    reserve = spec.online_reserve
    return OnlineReserve(reserve.runners, reserve.fraction, reserve.reclaim_grace_s,
                         reserve.latency_target_s)
