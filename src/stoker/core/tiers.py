"""The default tiers: online > smoke > regression > batch > best_effort."""

from __future__ import annotations

from stoker.core.model import Tier

DEFAULT_TIERS: tuple[Tier, ...] = (
    Tier("online", priority=100),
    Tier("smoke", priority=80, max_prompts=10),
    Tier("regression", priority=60, max_prompts=500),
    Tier("batch", priority=40),
    Tier("best_effort", priority=20, preemptible=True),
)
