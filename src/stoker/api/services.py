"""What the routes share: settings, store, clock, dispatcher; and who is calling."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from stoker.api.dispatch import Dispatcher
from stoker.clock import Clock
from stoker.core.model import Tier
from stoker.core.tiers import DEFAULT_TIERS, tiers_by_name
from stoker.errors import Unauthorized
from stoker.settings import Settings
from stoker.store import Store

DEFAULT_TEAM = "default"


@dataclass(frozen=True)
class Services:
    """The composition root's parts, reachable from every route."""

    settings: Settings
    store: Store
    clock: Clock
    dispatcher: Dispatcher
    tiers: dict[str, Tier]


def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found


def make_services(settings: Settings, store: Store, clock: Clock,
                  dispatcher: Dispatcher) -> Services:
    """Bundle the parts with the tiers in force."""
    return Services(settings, store, clock, dispatcher, tiers_by_name(DEFAULT_TIERS))


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def client_team(request: Request) -> str:
    """The team a client request acts for. With no teams configured, everyone is ``default``."""
    return DEFAULT_TEAM


def require_runner(request: Request) -> None:
    """Runner endpoints need the runner token when one is configured."""
    expected = services(request).settings.runner_token
    if expected is None:
        return
    given = _bearer(request)
    if given is None or not hmac.compare_digest(given, expected.get_secret_value()):
        raise Unauthorized("runner endpoints need 'Authorization: Bearer <runner token>'")
