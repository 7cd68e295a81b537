"""Settings of completion callbacks: retries, and the networks a callback may reach."""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, field_validator

from stoker.core.callbacks import CallbackPolicy
from stoker.settings_strict import _Strict


class CallbackSettings(_Strict):
    """How job completion callbacks are sent. Each team signs with its own
    ``webhook_secret``; ``secret`` signs for a server without teams."""

    max_attempts: int = Field(8, ge=1, le=50)
    backoff_s: float = Field(2.0, gt=0, le=3600)
    max_backoff_s: float = Field(600.0, gt=0, le=86_400)
    #: Seconds a receiver has to answer one delivery.
    timeout_s: float = Field(10.0, gt=0, le=120)
    #: Networks (CIDR) beyond the public Internet that callbacks may reach: a receiver on this
    #: machine (127.0.0.0/8) or in the cluster (10.0.0.0/8). Default none.
    allowed_networks: list[str] = Field(default_factory=list)
    secret: SecretStr | None = None
    secret_env: str | None = None

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network (e.g. 10.0.0.0/8)") from None
        return value

    def policy(self) -> CallbackPolicy:
        """The delivery policy these settings describe."""
        return CallbackPolicy(
            max_attempts=self.max_attempts, backoff_s=self.backoff_s,
            max_backoff_s=self.max_backoff_s,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False)
                                   for n in self.allowed_networks))
