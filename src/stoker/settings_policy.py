"""Settings of who submits work and in what order: tiers (with dispatch windows), teams
(tokens, weights, quotas, breakers), and scheduling across tiers."""

from __future__ import annotations

from datetime import time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator

from stoker.settings_strict import _Strict


class WindowSettings(_Strict):
    """Daily dispatch hours, e.g. nightly ``{start: "20:00", end: "08:00"}``."""

    start: time
    end: time
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> WindowSettings:
        if self.start == self.end:
            raise ValueError(f"start and end are both {self.start:%H:%M}, which would be open "
                             "never; leave the window out to dispatch at any hour")
        return self


class TierSettings(_Strict):
    """A tier: priority, prompt limit per job, optional dispatch window."""

    priority: int = Field(ge=0, le=1000)
    max_prompts: int | None = Field(None, ge=1)
    preemptible: bool = False
    window: WindowSettings | None = None
    run_outside_window_when_idle: bool = False
    #: Seconds within which the pool should finish this tier's queued work (autoscaling);
    #: default: the built-in tier's of that name, else an hour.
    drain_target_s: float | None = Field(None, gt=0, le=7 * 86_400)


class QuotaSettings(_Strict):
    """A team's quotas; left out means unlimited."""

    max_queued_requests: int | None = Field(None, ge=1)
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)


class BreakerSettings(_Strict):
    """Refuse a team's submissions for ``cooldown_s`` once it passes
    ``max_submissions`` jobs in ``window_s``."""

    max_submissions: int = Field(ge=1)
    window_s: float = Field(gt=0)
    cooldown_s: float = Field(gt=0)


class TeamSettings(_Strict):
    """A team: its token (inline or from an environment variable), weight, tiers, quotas."""

    token: SecretStr | None = None
    token_env: str | None = None
    weight: float = Field(1.0, gt=0, le=1000)
    tiers: list[str] | None = None
    quotas: QuotaSettings = QuotaSettings()
    circuit_breaker: BreakerSettings | None = None
    #: Teams naming the same group share one result cache (a hit tells a team what another
    #: asked, so only by choice); by default a team's cache is its own.
    cache_group: str | None = Field(None, min_length=1, max_length=100)
    #: The tier of this team's synchronous calls (``/v1/chat/completions``, ``/v1/messages``,
    #: …) when the call names none; default ``scheduling.online_tier``. An eval team set to
    #: a lower tier gets batch economics with no change to its client.
    sync_tier: str | None = None
    #: Signs this team's job completion callbacks (HMAC-SHA256); inline or from the
    #: environment. A team without one cannot ask for callbacks.
    webhook_secret: SecretStr | None = None
    webhook_secret_env: str | None = None
    #: Whether the team may submit command jobs (when the server enables them).
    commands: bool = False


class SchedulingSettings(_Strict):
    """Across tiers: strict priority, with an age past which waiting work is promoted."""

    starvation_age_s: float | None = Field(600.0, gt=0)
    starvation_ceiling_tier: str | None = "smoke"
    default_tier: str = "batch"
    #: The tier of ``/v1/chat/completions`` and ``/v1/completions`` calls.
    online_tier: str = "online"
    #: The tier of synchronous calls sent with OpenAI's ``service_tier: "flex"``.
    flex_tier: str = "batch"
