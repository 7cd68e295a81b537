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
