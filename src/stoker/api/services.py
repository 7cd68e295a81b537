"""What the routes share: settings, store, clock, dispatcher, policies; and who is calling."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from stoker.api.dispatch import Dispatcher
from stoker.api.metrics import StokerMetrics
from stoker.api.result_cache import model_revision
from stoker.api.streams import StreamHub
from stoker.api.teams import TeamDirectory
from stoker.api.upload_worker import UploadWorker
from stoker.clock import Clock
from stoker.core.batching import SchedulingPolicy
from stoker.core.model import Tier
from stoker.errors import Unauthorized
from stoker.settings import ModelSettings, Settings
from stoker.store import RollStatus, Store


@dataclass(frozen=True)
class Services:
    """The composition root's parts, reachable from every route."""

    settings: Settings
    store: Store
    clock: Clock
    dispatcher: Dispatcher
    tiers: dict[str, Tier]
    teams: TeamDirectory
    policy: SchedulingPolicy
    revisions: dict[str, str]
    #: When this API process started (the ``created`` of /v1/models entries).
    started_at: float
    metrics: StokerMetrics
    #: Validates big JSONL uploads in a child process.
    upload_worker: UploadWorker
    #: Streamed text from runners to the clients following it.
    streams: StreamHub


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What a model's runners load now: the newest roll in progress or done, else the
    configured checkpoint. ``rolling``: both revisions serve until the roll ends."""

    path: str
    revision: str
    rolling: bool = False
    #: None for the configured checkpoint (no roll yet).
    roll_id: str | None = None


def current_checkpoint(svc: Services, model: str) -> Checkpoint:
    """The checkpoint runners of ``model`` load now (one small read of the store)."""
    for roll in svc.store.model_rolls(model, limit=20):
        if roll.status in (RollStatus.ROLLING, RollStatus.DONE):
            return Checkpoint(roll.path, roll.revision, roll.status == RollStatus.ROLLING,
                              roll.id)
    return Checkpoint(str(svc.settings.model_path(model)), svc.revisions[model])


def services(request: Request) -> Services:
    """The app's services (a FastAPI dependency)."""
    found: Services = request.app.state.services
    return found


def model_revisions(settings: Settings) -> dict[str, str]:
    """Each model's revision, part of every result-cache fingerprint."""
    return {name: (remote_revision(name, spec) if spec.is_remote
                   else model_revision(settings.model_path(name), spec.revision))
            for name, spec in settings.models.items()}


def remote_revision(name: str, spec: ModelSettings) -> str:
    """A remote model's revision: the declared one, else its endpoint and provider name, so
    pointing the name at another model or provider never serves the old model's answers."""
    if spec.revision:
        return spec.revision
    raw = f"{spec.backend}|{spec.base_url}|{spec.remote_model or name}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def client_team(request: Request) -> str:
    """The team a client request acts for (401 without a valid token once teams exist);
    worked out once per request."""
    known = getattr(request.state, "team", None)
    if isinstance(known, str):
        return known
    authorization = request.headers.get("authorization")
    if authorization is None and (api_key := request.headers.get("x-api-key")):
        # Anthropic's SDK and tools send the key this way.
        authorization = f"Bearer {api_key}"
    team = services(request).teams.authenticate(authorization)
    request.state.team = team
    return team


def require_runner(request: Request) -> None:
    """Runner endpoints need the runner token when one is configured."""
    expected = services(request).settings.runner_token
    if expected is not None and not bearer_matches(request, expected.get_secret_value()):
        raise Unauthorized("runner endpoints need 'Authorization: Bearer <runner token>'")


def bearer_matches(request: Request, expected: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <expected>`` (constant time)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    given = token.strip() if scheme.lower() == "bearer" else ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
