"""Settings of lending: external online fleets whose idle replicas Stoker may borrow."""

from __future__ import annotations

from pydantic import Field, HttpUrl

from stoker.core.lending import LendingConfig
from stoker.settings_strict import _Strict


class ReplicaSettings(_Strict):
    """One replica of the online service: its base URL (``/metrics`` and ``/v1`` under it)."""

    url: HttpUrl


class FleetSettings(_Strict):
    """An online vLLM fleet and what its owner keeps for it (see stoker.core.lending).

    Lent replicas are served by runners of ``model`` (a model with ``backend: openai``), each
    pointed at its replica's OpenAI API."""

    model: str
    replicas: dict[str, ReplicaSettings] = Field(min_length=1)
    requests_per_replica: float = Field(gt=0)
    headroom: float = Field(0.25, ge=0, le=10)
    min_serving_replicas: int = Field(1, ge=1)
    max_waiting: float = Field(0.0, ge=0)
    kv_cache_high: float = Field(0.85, gt=0, le=1)
    lend_delay_s: float = Field(300.0, ge=0)
    lend_step: int = Field(1, ge=1)
    #: Replicas kept serving beyond the load's need while lending (a band against flapping).
    spare_replicas: int = Field(1, ge=0)
    #: Seconds between scrapes of the replicas' metrics.
    interval_s: float = Field(15.0, gt=0, le=3600)
    scrape_timeout_s: float = Field(5.0, gt=0, le=60)
    #: How long a reclaimed replica's runners may take to finish their batches before they
    #: are stopped (their unfinished requests go back to the queue).
    reclaim_grace_s: float = Field(30.0, ge=0, le=3600)
    runners_per_replica: int = Field(1, ge=1, le=16)

    def config(self) -> LendingConfig:
        """The lending policy's configuration."""
        return LendingConfig(
            requests_per_replica=self.requests_per_replica, headroom=self.headroom,
            min_serving_replicas=self.min_serving_replicas, max_waiting=self.max_waiting,
            kv_cache_high=self.kv_cache_high, lend_delay_s=self.lend_delay_s,
            lend_step=self.lend_step, spare_replicas=self.spare_replicas)

    def replica_base_url(self, replica: str) -> str:
        """The replica's OpenAI API base (``…/v1``)."""
        return str(self.replicas[replica].url).rstrip("/") + "/v1"
