"""The runner protocol (register, state, lease, heartbeat, report, progress, complete) and the
runner listing."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from stoker.api import access
from stoker.api.body import decode_utf8, json_body, parse_json, validate
from stoker.api.reclaim import reclaim_order
from stoker.api.render import runner_json
from stoker.api.services import Services, current_checkpoint, services
from stoker.core.commands import is_command_queue
from stoker.core.continuous import TopUp, online_ask_takes
from stoker.core.model import RunnerState
from stoker.errors import InvalidRequest, LeaseLost, ModelNotFound
from stoker.settings import ModelSettings, Settings
from stoker.store import RequestOutcome
from stoker.store.sql import PROVIDER_RATE_LIMITS

router = APIRouter(prefix="/api/runners", tags=["runners"],
                   dependencies=[Depends(access.operator)])
protocol = APIRouter(prefix="/api/runners", tags=["runner protocol"],
                     dependencies=[Depends(access.runner)])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(_In):
    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=256)
    pid: int | None = None
    host: str = Field("", max_length=255)
    max_batch_size: int | None = Field(None, ge=1, le=4096)
    #: When the runner's process started (unix s): its cold start counts from then, not from
    #: this call, which comes after its imports.
    launched_at: float | None = Field(None, ge=0)
    #: A replica of a lending fleet serving this model: the runner calls that replica's API.
    replica: str | None = Field(None, min_length=1, max_length=200)


#: The most text one shipment of a command's log may carry.
MAX_LOG_PIECE_CHARS = 256 * 1024

#: A launch time further back than this is taken as this far back (a clock that is off, or a
#: process that waited long before registering, must not charge hours of starting time).
MAX_LAUNCH_BEFORE_REGISTER_S = 600.0


class StateIn(_In):
    state: Literal["idle", "draining", "stopped"]


class TopUpIn(_In):
    """A continuous runner's ask for more rows while (or before) its loop runs."""

    max_rows: int = Field(ge=1, le=4096)
    online_only: bool = False
    loop_running: bool = False


class LeaseIn(_In):
    wait_s: float = Field(10.0, ge=0, le=300)
    top_up: TopUpIn | None = None


class LogIn(_In):
    """The next piece of a running command's output."""

    request_id: str = Field(min_length=1, max_length=100)
    text: str = Field(max_length=MAX_LOG_PIECE_CHARS)


class HeartbeatIn(_In):
    lease_ids: list[str] = Field(default_factory=list, max_length=4096)


class ResultIn(_In):
    request_id: str
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = Field(0, ge=0)
    completion_tokens: int = Field(0, ge=0)
    error: str | None = None
    retryable: bool = False
    stop_sequence: str | None = None
    #: [token, logprob, [[token, logprob], ...]] per token, when the request asked.
    logprobs: list[Any] | None = None
    #: The tools the model called (OpenAI's ``tool_calls`` objects), when it called any.
    tool_calls: list[dict[str, Any]] | None = Field(None, max_length=128)


class ReportIn(_In):
    lease_id: str
    #: The runner's name for this report: the same report sent twice is recorded once.
    report_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    started_at: float
    ended_at: float
    results: list[ResultIn] = Field(default_factory=list, max_length=4096)
    #: How many rows the loop decoded together in that time, on average (the batch size the
    #: waste report reads).
    rows: int | None = Field(None, ge=1, le=8192)
    #: Rows the loop dropped unfinished when the runner was reclaimed for online work.
    returned: list[str] = Field(default_factory=list, max_length=4096)

    @model_validator(mode="after")
    def _says_something(self) -> ReportIn:
        if not self.results and not self.returned:
            raise ValueError("a report carries results, returned rows, or both")
        return self


class ProgressIn(_In):
    #: Each streamed request's text so far.
    texts: dict[str, str] = Field(max_length=4096)


class CompleteIn(_In):
    lease_id: str
    started_at: float
    ended_at: float
    results: list[ResultIn] = Field(max_length=4096)
    #: Provider 429s the batch met (retried inside the runner), for the counters.
    provider_rate_limits: int = Field(0, ge=0)
    #: Requests handed back unfinished when the runner was reclaimed for online work.
    returned: list[str] = Field(default_factory=list, max_length=4096)


async def _read(request: Request, schema: type[_In]) -> Any:
    return validate(schema, parse_json(decode_utf8(await request.body())))


@router.get("")
def list_runners(include_stopped: bool = False,
                 svc: Services = Depends(services)) -> dict[str, Any]:
    """Every live runner (and stopped ones on request): state, model, pid, batch in hand."""
    runners = svc.store.list_runners(include_stopped=include_stopped)
    return {"object": "list", "data": [runner_json(r) for r in runners]}


@router.post("/{runner_id}/drain")
def drain_runner(runner_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    """Ask a runner to finish its batch in hand and stop."""
    runner = svc.store.set_runner_state(runner_id, RunnerState.DRAINING, now=svc.clock.now())
    svc.dispatcher.notify(runner.model)
    return runner_json(runner)


@protocol.post("", status_code=201, openapi_extra=json_body(RegisterIn))
async def register(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """A runner announces itself; it is ``starting`` until it reports ``idle``."""
    body: RegisterIn = await _read(request, RegisterIn)
    settings = svc.settings
    if body.model not in settings.models:
        raise ModelNotFound(f"model {body.model!r} is not configured on this server; "
                            f"configured: {', '.join(sorted(settings.models))}")
    replica_url = replica_base_url(settings, body.model, body.replica)
    batching = settings.batching_for(body.model)
    checkpoint = await run_in_threadpool(current_checkpoint, svc, body.model)
    now = svc.clock.now()
    launched_at = None if body.launched_at is None else \
        min(now, max(body.launched_at, now - MAX_LAUNCH_BEFORE_REGISTER_S))
    runner = await run_in_threadpool(
        svc.store.register_runner, name=body.name, model=body.model, pid=body.pid,
        host=body.host, max_batch_size=body.max_batch_size or batching.max_batch_size,
        max_wait_ms=batching.max_wait_ms, now=now, revision=checkpoint.revision,
        launched_at=launched_at,
    )
    leases = settings.leases
    return {
        "runner": runner_json(runner),
        "lease_ttl_s": leases.ttl_s,
        "heartbeat_interval_s": max(0.2, leases.ttl_s / 3),
        "long_poll_s": leases.long_poll_s,
        "model_path": checkpoint.path,
        "backend": backend_terms(body.model, settings.models[body.model], replica_url),
        "batching": {"continuous": batching.continuous,
                     "online_headroom_rows": batching.online_headroom_rows},
        "commands": command_terms(settings) if settings.commands.enabled else None,
    }


def command_terms(settings: Settings) -> dict[str, Any]:
    """How a runner runs command jobs: where checkpoints go, how much log it ships."""
    commands = settings.commands
    return {"checkpoint_root": str(settings.checkpoint_root().resolve()),
            "log_interval_s": commands.log_interval_s,
            "max_log_bytes_per_run": commands.max_log_bytes_per_run,
            "max_grace_s": commands.max_grace_s}


def replica_base_url(settings: Settings, model: str, replica: str | None) -> str | None:
    """The API of the lent ``replica`` that a runner of ``model`` calls (None: the model's
    own). Only replicas of a fleet configured for that model: a runner names one, never a
    URL."""
    if replica is None:
        return None
    for fleet in settings.lending.values():
        if fleet.model == model and replica in fleet.replicas:
            return fleet.replica_base_url(replica)
    raise InvalidRequest(f"no lending fleet of model {model!r} has a replica {replica!r}",
                         param="replica")


def backend_terms(name: str, spec: ModelSettings,
                  base_url: str | None = None) -> dict[str, Any]:
    """What a runner needs to reach its model: never the key, which the runner's host holds.
    ``base_url``: a lent replica's API instead of the model's."""
    if not spec.is_remote:
        return {"kind": spec.backend, "dtype": spec.load_dtype}
    return {"kind": spec.backend, "base_url": base_url or spec.base_url,
            "remote_model": spec.remote_model or name, "max_concurrency": spec.max_concurrency,
            "timeout_s": spec.timeout_s, "max_retries": spec.max_retries,
            "max_backoff_s": spec.max_backoff_s}


@protocol.post("/{runner_id}/state", openapi_extra=json_body(StateIn))
async def set_state(runner_id: str, request: Request,
                    svc: Services = Depends(services)) -> dict[str, Any]:
    """A runner reports a state change: loaded (idle), draining, or stopped."""
    body: StateIn = await _read(request, StateIn)
    runner = await run_in_threadpool(svc.store.set_runner_state, runner_id,
                                     RunnerState(body.state), now=svc.clock.now())
    svc.dispatcher.notify(runner.model)
    return runner_json(runner)


@protocol.post("/{runner_id}/lease", openapi_extra=json_body(LeaseIn))
async def lease(runner_id: str, request: Request,
                svc: Services = Depends(services)) -> dict[str, Any]:
    """Long-poll for a batch, formed by the core batch policy."""
    body: LeaseIn = await _read(request, LeaseIn)
    # A granted lease records the heartbeat in its own statement.
    ask = None if body.top_up is None else TopUp(**body.top_up.model_dump())
    got = await svc.dispatcher.lease(runner_id, body.wait_s, ask)
    if got is None:
        current = await run_in_threadpool(svc.store.touch_runner, runner_id, now=svc.clock.now())
        draining = current.state in (RunnerState.DRAINING, RunnerState.STOPPED)
        return {"lease": None, "requests": [], "draining": draining}
    granted, requests = got
    return {
        "lease": {"id": granted.id, "expires_at": granted.expires_at},
        # "online": its client waits on it; a static runner reports it as soon as it is done.
        "requests": [{"id": r.id, "job_id": r.job_id, "endpoint": r.endpoint, "body": r.body,
                      "attempt": r.attempts, "online": online_ask_takes(r.tier, svc.policy)}
                     for r in requests],
        "draining": False,
    }


@protocol.post("/{runner_id}/heartbeat", openapi_extra=json_body(HeartbeatIn))
async def heartbeat(runner_id: str, request: Request,
                    svc: Services = Depends(services)) -> dict[str, Any]:
    """Renew the runner's leases; tells it which were lost and whether to drain."""
    body: HeartbeatIn = await _read(request, HeartbeatIn)
    return await run_in_threadpool(_heartbeat, svc, runner_id, body)


def _heartbeat(svc: Services, runner_id: str, body: HeartbeatIn) -> dict[str, Any]:
    now = svc.clock.now()
    runner = svc.store.touch_runner(runner_id, now=now)
    lost = []
    for lease_id in body.lease_ids:
        try:
            svc.store.renew_lease(lease_id, runner_id, ttl_s=svc.settings.leases.ttl_s, now=now)
        except LeaseLost:
            lost.append(lease_id)
    held = bool(body.lease_ids)
    return {"lost_lease_ids": lost, "draining": runner.state == RunnerState.DRAINING,
            "stopped": runner.state == RunnerState.STOPPED,
            "reclaim": reclaim_order(svc, runner) if held else None,
            # A running command of a cancelled job is stopped (a batch row just finishes).
            "cancelled": svc.store.cancelled_leased_requests(runner_id) if held else []}


@protocol.post("/{runner_id}/logs", openapi_extra=json_body(LogIn))
async def ship_log(runner_id: str, request: Request,
                   svc: Services = Depends(services)) -> dict[str, Any]:
    """Keep the next piece of the output of a command the runner is running; 409 once the
    runner no longer holds it."""
    body: LogIn = await _read(request, LogIn)
    await run_in_threadpool(svc.store.append_command_log, runner_id, body.request_id,
                            body.text, now=svc.clock.now())
    return {"kept": len(body.text)}


@protocol.post("/{runner_id}/report", openapi_extra=json_body(ReportIn))
async def report(runner_id: str, request: Request,
                 svc: Services = Depends(services)) -> dict[str, Any]:
    """Record results as a continuous runner's rows finish; the lease ends with its last."""
    body: ReportIn = await _read(request, ReportIn)
    outcomes = [RequestOutcome(**r.model_dump()) for r in body.results]
    summary = await run_in_threadpool(
        svc.store.report, body.lease_id, runner_id, outcomes, report_id=body.report_id,
        started_at=body.started_at, ended_at=body.ended_at, now=svc.clock.now(),
        rows=body.rows, returned=body.returned)
    if summary.requeued:
        svc.dispatcher.notify(summary.model, wake=1)
    if body.results and not summary.repeated and not is_command_queue(summary.model):
        svc.metrics.observe_batch(summary.model, body.rows or len(body.results),
                                  body.ended_at - body.started_at,
                                  sum(r.prompt_tokens for r in body.results),
                                  sum(r.completion_tokens for r in body.results))
    svc.dispatcher.notify_progress()
    return {"recorded": summary.recorded, "duplicates": summary.duplicates}


@protocol.post("/{runner_id}/progress", openapi_extra=json_body(ProgressIn))
async def progress(runner_id: str, request: Request,
                   svc: Services = Depends(services)) -> dict[str, Any]:
    """The text streamed requests have so far, relayed to the clients streaming them."""
    body: ProgressIn = await _read(request, ProgressIn)
    for request_id, text in body.texts.items():
        svc.streams.publish(request_id, text)
    await run_in_threadpool(svc.store.announce_partials, body.texts)
    return {"relayed": len(body.texts)}


@protocol.post("/{runner_id}/complete", openapi_extra=json_body(CompleteIn))
async def complete(runner_id: str, request: Request,
                   svc: Services = Depends(services)) -> dict[str, Any]:
    """Record a batch's results; the first result for a request wins, repeats are counted."""
    body: CompleteIn = await _read(request, CompleteIn)
    outcomes = [RequestOutcome(**r.model_dump()) for r in body.results]
    now = svc.clock.now()
    summary = await run_in_threadpool(
        svc.store.complete, body.lease_id, runner_id, outcomes,
        started_at=body.started_at, ended_at=body.ended_at, now=now, returned=body.returned,
    )
    # A retried report was counted the first time; a command's run is no batch of tokens.
    if not summary.repeated and not is_command_queue(summary.model):
        svc.metrics.observe_batch(summary.model, len(body.results),
                                  body.ended_at - body.started_at,
                                  sum(r.prompt_tokens for r in body.results),
                                  sum(r.completion_tokens for r in body.results))
    if body.provider_rate_limits and not summary.repeated:
        await run_in_threadpool(svc.store.count_event, PROVIDER_RATE_LIMITS,
                                by=body.provider_rate_limits)
    # The store put a runner with no open lease back to idle in the same transaction.
    if summary.requeued:
        svc.dispatcher.notify(summary.model, wake=1)
    svc.dispatcher.notify_progress()
    return {"recorded": summary.recorded, "duplicates": summary.duplicates,
            "requeued": summary.requeued, "failed": summary.failed}
