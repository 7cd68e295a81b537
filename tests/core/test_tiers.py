"""The tier of a synchronous call: what the caller names, its service_tier, its team's
default."""

from __future__ import annotations

from stoker.core.tiers import sync_call_tier


def tier(asked: str | None = None, service: str | None = None,
         team_default: str = "online") -> str | None:
    return sync_call_tier(asked_tier=asked, service_tier=service, team_default=team_default,
                          online_tier="online", flex_tier="batch")


def test_the_named_tier_wins() -> None:
    assert tier("smoke", "flex") == "smoke"


def test_service_tier_maps_to_online_or_flex() -> None:
    assert tier(service="priority") == "online"
    assert tier(service="default", team_default="regression") == "online"
    assert tier(service="flex") == "batch"


def test_nothing_named_or_auto_is_the_teams_default() -> None:
    assert tier(team_default="regression") == "regression"
    assert tier(service="auto", team_default="regression") == "regression"


def test_an_unknown_service_tier_is_no_tier() -> None:
    assert tier(service="scale") is None
