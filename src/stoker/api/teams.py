"""Who is calling: team tokens, and each team's weight, tiers, quotas and breaker."""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from pydantic import SecretStr

from stoker.core.admission import BreakerConfig, TeamQuota
from stoker.errors import Forbidden, InvalidRequest, Unauthorized
from stoker.settings import Settings
from stoker.settings_policy import BreakerSettings, TeamSettings

DEFAULT_TEAM = "default"


@dataclass(frozen=True, slots=True)
class TeamPolicy:
    """What one team may do."""

    name: str
    weight: float
    tiers: frozenset[str] | None
    quota: TeamQuota
    breaker: BreakerConfig | None
    #: Whose result cache the team's requests read and fill: its own, or a shared group's.
    cache_scope: str
    #: The tier of the team's synchronous calls that name none (None: the online tier).
    sync_tier: str | None = None
    #: Whether the team may submit command jobs (the server must enable them too).
    commands: bool = False

    def check_tier(self, tier: str) -> None:
        """Refuse a tier the team may not use."""
        if self.tiers is not None and tier not in self.tiers:
            raise Forbidden(f"team {self.name!r} may not submit to tier {tier!r}; its tiers: "
                            f"{', '.join(sorted(self.tiers))}")


def _breaker(config: BreakerSettings | None) -> BreakerConfig | None:
    if config is None:
        return None
    return BreakerConfig(config.max_submissions, config.window_s, config.cooldown_s)


def _secret(inline: SecretStr | None, env: str | None) -> bytes | None:
    if inline is not None:
        return inline.get_secret_value().encode("utf-8")
    if env and os.environ.get(env):
        return os.environ[env].encode("utf-8")
    return None


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class TeamDirectory:
    """Team policies, and tokens kept only as SHA-256 digests."""

    def __init__(self, settings: Settings) -> None:
        self._by_digest: dict[bytes, str] = {}
        self._policies: dict[str, TeamPolicy] = {}
        self._webhook_secrets: dict[str, bytes] = {}
        for name, team in settings.teams.items():
            self._by_digest[_digest(self._token_of(name, team))] = name
            secret = _secret(team.webhook_secret, team.webhook_secret_env)
            if secret is not None:
                self._webhook_secrets[name] = secret
            self._policies[name] = TeamPolicy(
                name, team.weight, frozenset(team.tiers) if team.tiers is not None else None,
                TeamQuota(**team.quotas.model_dump()),
                _breaker(team.circuit_breaker or settings.circuit_breaker),
                f"group:{team.cache_group}" if team.cache_group else f"team:{name}",
                team.sync_tier, team.commands,
            )
        if not self._policies:
            self._policies[DEFAULT_TEAM] = TeamPolicy(
                DEFAULT_TEAM, 1.0, None, TeamQuota(), _breaker(settings.circuit_breaker),
                f"team:{DEFAULT_TEAM}", commands=True)
            secret = _secret(settings.callbacks.secret, settings.callbacks.secret_env)
            if secret is not None:
                self._webhook_secrets[DEFAULT_TEAM] = secret

    @staticmethod
    def _token_of(name: str, team: TeamSettings) -> str:
        if team.token is not None:
            return team.token.get_secret_value()
        if team.token_env and os.environ.get(team.token_env):
            return os.environ[team.token_env]
        raise InvalidRequest(f"team {name!r} has no token: set 'token', or 'token_env' naming "
                             "a set environment variable")

    @property
    def configured(self) -> bool:
        """Whether teams (and so authentication) are configured."""
        return bool(self._by_digest)

    def authenticate(self, authorization: str | None) -> str:
        """The team whose token the ``Authorization`` header carries."""
        if not self.configured:
            return DEFAULT_TEAM
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("send your team's token as 'Authorization: Bearer <token>'")
        given = _digest(token.strip())
        for digest, team in self._by_digest.items():
            if hmac.compare_digest(digest, given):
                return team
        raise Unauthorized("the token is not valid for any team")

    def webhook_secret(self, team: str) -> bytes | None:
        """The key that signs the team's completion callbacks (None: it has none)."""
        return self._webhook_secrets.get(team)

    def policy(self, team: str) -> TeamPolicy:
        """A team's policy."""
        return self._policies[team]

    def weights(self) -> dict[str, float]:
        """Every team's fair-share weight."""
        return {name: p.weight for name, p in self._policies.items()}
