"""Server settings: defaults for the embedded setup, a YAML file, and flags, in that order."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)

from stoker.errors import InvalidRequest
from stoker.settings_callbacks import CallbackSettings
from stoker.settings_checks import check_settings
from stoker.settings_commands import CommandSettings
from stoker.settings_lending import FleetSettings
from stoker.settings_policy import (
    BreakerSettings,
    SchedulingSettings,
    TeamSettings,
    TierSettings,
)
from stoker.settings_pool import (
    AutoscaleSettings,
    KubernetesSettings,
    OnlineReserveSettings,
    PoolSettings,
)
from stoker.settings_strict import _Strict

TINY_MODEL_NAME = "tiny-llama"


class BatchingSettings(_Strict):
    """How a runner forms batches (the seed's ``batching`` block)."""

    max_batch_size: int = Field(16, ge=1, le=4096)
    max_wait_ms: int = Field(200, ge=0, le=600_000)
    #: Rows join the running decode loop as others finish (local models); false: each batch
    #: runs to its end before the next is leased.
    continuous: bool = True
    #: Online requests may join a continuous loop past ``max_batch_size`` by this many rows,
    #: so that they never wait for a batch row to finish.
    online_headroom_rows: int = Field(4, ge=0, le=1024)


REMOTE_BACKENDS = ("openai", "anthropic")


class ModelSettings(_Strict):
    """One model the pool serves, under its public name.

    ``transformers``: a local checkpoint directory (``path``). ``openai`` (any OpenAI-compatible
    endpoint: vLLM, SGLang, another Stoker, a hosted API) and ``anthropic`` (the Messages API):
    ``base_url``, the provider's name for the model (``remote_model``, default the public
    name) and the key, read from ``api_key_env`` or ``api_key_file`` and sent to ``base_url``
    only.
    """

    path: Path | None = None
    backend: Literal["transformers", "openai", "anthropic"] = "transformers"
    batching: BatchingSettings | None = None
    max_new_tokens: int = Field(512, ge=1, le=131_072)
    device: str = "cpu"
    #: The type a local model's weights are loaded in: the checkpoint's own ("auto"), or one
    #: to cast to. bfloat16 halves memory and, on CPUs with AVX-512 BF16 and on GPUs, speeds
    #: decoding. (``dtype`` below only declares a remote model's size.)
    load_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    revision: str | None = None
    base_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    remote_model: str | None = Field(None, min_length=1, max_length=256)
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_key_file: Path | None = None
    #: Requests a remote runner keeps in flight at once (its batch is sent concurrently).
    max_concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(120.0, gt=0, le=3600)
    #: Tries per request on a provider 429/5xx/connection error before it counts as an attempt.
    max_retries: int = Field(4, ge=0, le=20)
    #: The longest wait between those tries (a provider's Retry-After is capped by it).
    max_backoff_s: float = Field(30.0, gt=0, le=600)
    #: The runner class (accelerator and price) this model's runners run on.
    runner_class: str = "cpu"
    #: Declared size, for models whose checkpoint Stoker cannot read (remote, or not
    #: safetensors); a local safetensors checkpoint is measured instead.
    params: int | None = Field(None, ge=1)
    dtype: str | None = None
    #: Runner processes `stoker serve` starts for this model (default: pool.size for the
    #: default model, 1 for a remote one, 0 otherwise). With ``autoscale``, the pool's size is
    #: the autoscaler's instead.
    runners: int | None = Field(None, ge=0, le=64)
    autoscale: AutoscaleSettings | None = None
    #: Runners kept free for online traffic; the others take work that can wait.
    online_reserve: OnlineReserveSettings | None = None

    @model_validator(mode="after")
    def _backend_fields(self) -> ModelSettings:
        remote = self.backend in REMOTE_BACKENDS
        if remote and self.base_url is None:
            raise ValueError(f"backend {self.backend!r} needs base_url")
        if not remote and (self.base_url or self.api_key_env or self.api_key_file):
            raise ValueError("base_url and api keys belong to remote backends (openai, "
                             "anthropic); a transformers model has a local path")
        if self.api_key_env and self.api_key_file:
            raise ValueError("give api_key_env or api_key_file, not both")
        return self

    @property
    def is_remote(self) -> bool:
        """Whether a provider endpoint, not a local checkpoint, runs this model."""
        return self.backend in REMOTE_BACKENDS

    def read_api_key(self) -> str | None:
        """The provider key, from the environment or the file named in config (never logged,
        never in an error message)."""
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise InvalidRequest(f"environment variable {self.api_key_env} (api_key_env) "
                                     "is not set")
            return key
        if self.api_key_file:
            try:
                key = self.api_key_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise InvalidRequest(f"cannot read api_key_file {self.api_key_file}: "
                                     f"{exc.strerror}") from None
            if not key:
                raise InvalidRequest(f"api_key_file {self.api_key_file} is empty")
            return key
        return None


class RunnerClassSettings(_Strict):
    """A runner class: its accelerator, accelerator memory and price per hour."""

    accelerator: str = Field(min_length=1, max_length=64)
    memory_gb: float = Field(gt=0, le=100_000)
    price_per_hour_usd: float = Field(ge=0, le=100_000)


class AccountingSettings(_Strict):
    """How a batch's cost is shared among its requests, and the default report window."""

    prompt_weight: float = Field(1.0, ge=0)
    completion_weight: float = Field(1.0, ge=0)
    #: The minimum a cold machine bills, in the one-job-at-a-time counterfactual.
    min_billed_s: float = Field(60.0, ge=0)
    default_window_h: float = Field(24.0, gt=0, le=24 * 366)


class LeaseSettings(_Strict):
    """How long a runner's claim on a batch lasts, and how often a request may be tried."""

    ttl_s: float = Field(30.0, gt=0, le=3600)
    max_attempts: int = Field(3, ge=1, le=100)
    runner_timeout_s: float = Field(60.0, gt=0, le=86_400)
    long_poll_s: float = Field(10.0, gt=0, le=300)


class LimitSettings(_Strict):
    """Bounds on what one client request may carry."""

    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)
    max_requests_per_job: int = Field(100_000, ge=1)
    #: How long an online (``/v1/chat/completions``) call waits for its answer before a 504.
    online_timeout_s: float = Field(600.0, gt=0, le=3600)
    #: A request's head must arrive within this of its first byte (or of the connection
    #: opening), its body within ``body_timeout_s`` of the head; else the connection closes.
    header_timeout_s: float = Field(10.0, gt=0, le=600)
    body_timeout_s: float = Field(120.0, gt=0, le=3600)
    #: How long an idle keep-alive connection is kept between requests.
    keep_alive_s: int = Field(5, ge=1, le=600)
    #: The API process's GIL switch interval (Python's default is 5 ms): how long the event
    #: loop may wait for a worker thread busy with a big upload, each time it needs the GIL.
    gil_switch_interval_s: float = Field(0.0005, gt=0, le=0.1)
    #: A JSONL upload of at least this many bytes is validated in a child process (seconds
    #: of parsing that would otherwise hold the GIL the API's threads need); 0: every one.
    upload_worker_min_bytes: int = Field(1024 * 1024, ge=0)


class Settings(_Strict):
    """Everything `stoker serve` needs. Built by :func:`load_settings`."""

    host: str = "127.0.0.1"
    port: int = Field(8420, ge=0, le=65535)
    data_dir: Path = Path(".stoker")
    default_model: str = TINY_MODEL_NAME
    models: dict[str, ModelSettings] = Field(
        default_factory=lambda: {TINY_MODEL_NAME: ModelSettings()}
    )
    batching: BatchingSettings = BatchingSettings()
    pool: PoolSettings = PoolSettings()
    #: Where autoscaled pools start runners: local processes, or pods (``kubernetes``).
    provisioner: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesSettings | None = None
    leases: LeaseSettings = LeaseSettings()
    limits: LimitSettings = LimitSettings()
    runner_token: SecretStr | None = None
    #: A PostgreSQL URL (postgresql://…) for a shared store; None means SQLite in data_dir.
    store: SecretStr | None = None
    #: Connections each API process keeps to PostgreSQL. More than the database has cores
    #: only adds contention (measured: 8 did 20% better than 32 on 2 cores, bench/queue_load.py).
    store_pool_size: int = Field(8, ge=1, le=256)
    tiers: dict[str, TierSettings] = Field(default_factory=dict)
    teams: dict[str, TeamSettings] = Field(default_factory=dict)
    circuit_breaker: BreakerSettings | None = None
    scheduling: SchedulingSettings = SchedulingSettings()
    #: Runner classes on top of the shipped price table (same name replaces).
    runner_classes: dict[str, RunnerClassSettings] = Field(default_factory=dict)
    accounting: AccountingSettings = AccountingSettings()
    callbacks: CallbackSettings = CallbackSettings()
    #: Command jobs: commands run on lent accelerators, with a checkpoint contract.
    commands: CommandSettings = CommandSettings()
    #: External online fleets whose idle replicas Stoker borrows (see stoker.core.lending).
    lending: dict[str, FleetSettings] = Field(default_factory=dict)
    #: Sees every team's costs (the dashboard and reports); teams see their own. Once teams
    #: exist, the operator routes (runners, drain, counters, metrics, docs) need it.
    operator_token: SecretStr | None = None
    #: Serve /openapi.json, /docs and /redoc to any caller (else the operator's).
    api_docs_public: bool = False

    def checkpoint_root(self) -> Path:
        """Where command jobs' checkpoint directories are made."""
        return self.commands.checkpoint_root or self.data_dir / "checkpoints"

    def model_path(self, name: str) -> Path:
        """Where the checkpoint of model ``name`` lives."""
        spec = self.models[name]
        return spec.path if spec.path is not None else self.data_dir / "models" / name

    def runners_for(self, name: str) -> int:
        """How many runner processes `stoker serve` starts for model ``name``."""
        spec = self.models[name]
        if spec.runners is not None:
            return spec.runners
        if any(fleet.model == name for fleet in self.lending.values()):
            return 0  # the lending controller starts them, one set per lent replica
        if name == self.default_model:
            return self.pool.size
        return 1 if spec.is_remote else 0

    def batching_for(self, name: str) -> BatchingSettings:
        """The batching limits of model ``name``: its own, else the server's."""
        spec = self.models.get(name)
        if spec is not None and spec.batching is not None:
            return spec.batching
        return self.batching

    @property
    def database_path(self) -> Path:
        """The embedded SQLite database."""
        return self.data_dir / "stoker.db"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional YAML file, with ``overrides`` (flags) on top.

    ``overrides`` may hold nested dicts (``pool={"size": 3}``); ``None`` values are skipped.
    Raises :class:`InvalidRequest` with a readable message for a bad file.
    """
    raw: dict[str, Any] = {}
    if config_file is not None:
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidRequest(f"cannot read config {config_file}: {exc}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise InvalidRequest(f"config {config_file} must be a YAML mapping")
        raw = loaded or {}
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        settings = Settings.model_validate(_deep_merge(raw, given))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise InvalidRequest(f"invalid settings: {problems}") from None
    check_settings(settings)
    if not settings.teams and not is_loopback(settings.host):
        # No teams means no client authentication, so the API must not be reachable from
        # other machines. Teams and their tokens lift this (next milestone).
        raise InvalidRequest(
            f"host {settings.host!r} is not a loopback address; with no teams configured "
            "the API accepts any caller, so it listens on 127.0.0.1 or ::1 only"
        )
    if settings.default_model not in settings.models:
        raise InvalidRequest(
            f"default_model {settings.default_model!r} is not among models: "
            f"{', '.join(sorted(settings.models))}"
        )
    return settings
