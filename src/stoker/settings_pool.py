"""Settings of the runner pool: its fixed size, its autoscaler, and where runners run."""

from __future__ import annotations

from pydantic import Field, model_validator

from stoker.core.autoscale import AutoscaleConfig
from stoker.settings_strict import _Strict


class OnlineReserveSettings(_Strict):
    """Runners of a model's pool kept free of work below the online tier: ``runners``, or
    ``fraction`` of the warm ones if that is more. The rest are lent to such work when online
    traffic leaves them idle (see stoker.core.lending.may_lend_runner)."""

    runners: int = Field(0, ge=0, le=64)
    fraction: float = Field(0.0, ge=0, le=1)
    #: When online requests queue and no runner is idle, runners holding work below the
    #: online tier stop it after this long and hand it back to the queue (attempts not
    #: counted). None: they finish their batch first.
    reclaim_grace_s: float | None = Field(None, ge=0, le=600)
    #: Online latency (submission to answer) past which runners serving online requests
    #: beside work below the online tier hand that work back too, though no online request
    #: queues: the 90th percentile of the model's online requests of the last minute (those
    #: still open count as waiting so far). Needs ``reclaim_grace_s``. None: queueing alone
    #: triggers a reclaim.
    latency_target_s: float | None = Field(None, gt=0, le=600)


class PoolSettings(_Strict):
    """The local pool: how many runner processes serve the default model."""

    size: int = Field(2, ge=0, le=64)


class AutoscaleSettings(_Strict):
    """A model pool sized by the autoscaler (see stoker.core.autoscale)."""

    min_runners: int = Field(0, ge=0, le=64)
    max_runners: int = Field(ge=1, le=64)
    #: How long a runner with no work is kept warm before it is stopped.
    keep_warm_s: float = Field(1800.0, ge=0, le=7 * 86_400)
    #: Stop the last runner too once nothing is queued (the next request waits a cold start).
    scale_to_zero: bool = False
    #: Between two stops, against flapping.
    cooldown_s: float = Field(60.0, ge=0, le=86_400)
    #: How often the controller decides.
    interval_s: float = Field(2.0, gt=0, le=600)
    #: Used until the pool has measured its own (from its recorded batches and starts).
    assumed_tokens_per_runner_s: float = Field(100.0, gt=0)
    assumed_cold_start_s: float = Field(60.0, ge=0)
    assumed_completion_tokens: float = Field(128.0, gt=0)

    def policy_config(self) -> AutoscaleConfig:
        """What the autoscale policy is given (the live controller's and the simulator's)."""
        return AutoscaleConfig(
            min_runners=self.min_runners, max_runners=self.max_runners,
            keep_warm_s=self.keep_warm_s, scale_to_zero=self.scale_to_zero,
            cooldown_s=self.cooldown_s,
            assumed_tokens_per_runner_s=self.assumed_tokens_per_runner_s,
            assumed_cold_start_s=self.assumed_cold_start_s)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSettings:
        if self.min_runners > self.max_runners:
            raise ValueError(f"min_runners ({self.min_runners}) is above max_runners "
                             f"({self.max_runners})")
        return self


class RunnerPodSettings(_Strict):
    """How a runner class's pods are placed on a Kubernetes cluster."""

    #: Nodes of this class (e.g. ``{"cloud.google.com/gke-accelerator": "nvidia-l4"}``).
    node_selector: dict[str, str] = Field(default_factory=dict)
    #: The extended resource a runner asks for, and how many (0: a CPU runner).
    gpu_resource: str = Field("nvidia.com/gpu", min_length=1, max_length=253)
    gpus: int = Field(1, ge=0, le=16)
    cpu: str | None = Field(None, pattern=r"^[0-9]+(\.[0-9]+)?m?$")
    memory: str | None = Field(None, pattern=r"^[0-9]+(Ki|Mi|Gi|Ti|K|M|G|T)?$")


class KubernetesSettings(_Strict):
    """Runner pods on Kubernetes (``provisioner: kubernetes``), made by the autoscaler."""

    namespace: str = Field("stoker", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    image: str = Field(min_length=1, max_length=512)
    #: How runner pods reach the API (its Service), e.g. http://stoker-api.stoker.svc:8420.
    server_url: str = Field(pattern=r"^https?://[^\s]+$")
    #: The Secret holding the runner token under the key ``runner-token``.
    runner_token_secret: str = Field("stoker-secrets", min_length=1, max_length=253)
    service_account: str | None = Field(None, min_length=1, max_length=253)
    #: Time a stopped runner has to finish its batch before it is killed.
    termination_grace_period_s: int = Field(300, ge=1, le=86_400)
    #: A PersistentVolumeClaim holding the checkpoints, mounted read-only in runner pods at
    #: ``models_mount_path`` (models' ``path`` point under it).
    models_claim: str | None = Field(None, min_length=1, max_length=253)
    models_mount_path: str = Field("/models", pattern=r"^/")
    #: A PersistentVolumeClaim (ReadWriteMany) where command jobs keep their checkpoints,
    #: mounted read-write in runner pods at ``checkpoints_mount_path``; set
    #: ``commands.checkpoint_root`` to that path. None: runner pods run no command jobs' runs
    #: across pods (a checkpoint would stay in the pod that wrote it).
    checkpoints_claim: str | None = Field(None, min_length=1, max_length=253)
    checkpoints_mount_path: str = Field("/checkpoints", pattern=r"^/")
    #: Placement per runner class (the model's ``runner_class``); absent: no GPU request.
    runner_classes: dict[str, RunnerPodSettings] = Field(default_factory=dict)
