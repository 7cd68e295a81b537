"""Command jobs: submitting a command to run on a lent accelerator, and reading its logs.

A command job is a job like any other once stored (status, cancel, callbacks, accounting
through ``/api/jobs``); see :mod:`stoker.core.commands` for how it runs.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import Field, field_validator

from stoker.api import access
from stoker.api.body import decode_utf8, json_body, parse_json, validate
from stoker.api.job_input import JobOptions, ParsedJob
from stoker.api.jobs import owned_job
from stoker.api.render import job_json
from stoker.api.services import Services, client_team, services
from stoker.api.submission import enqueue, tier_for
from stoker.core.commands import COMMAND_ENDPOINT, CommandSpec, command_queue, env_problem
from stoker.core.continuous import online_ask_takes
from stoker.errors import Forbidden, InvalidRequest, ModelNotFound
from stoker.store import NewRequest
from stoker.store.protocol_commands import LogChunk

router = APIRouter(prefix="/api", tags=["commands"], dependencies=[Depends(access.client)])


class CommandSubmission(JobOptions):
    """``POST /api/commands``: what to run, on runners of which model, and the job options."""

    #: The model whose runners lend their accelerator (default: the server's default model).
    model: str | None = Field(None, min_length=1, max_length=256)
    argv: list[str] = Field(min_length=1, max_length=1024)
    env: dict[str, str] = Field(default_factory=dict, max_length=128)
    #: Seconds from SIGTERM to SIGKILL when the run is stopped (the server's default if
    #: left out, at most ``commands.max_grace_s``).
    grace_s: float | None = Field(None, ge=0, le=3600)
    #: Seconds one run may last before it is killed and the job fails.
    max_run_s: float | None = Field(None, gt=0, le=30 * 86_400)
    cache: bool = False

    @field_validator("argv")
    @classmethod
    def _argv(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise ValueError("argv[0], the program, is empty")
        if any("\0" in a or len(a) > 65_536 for a in value):
            raise ValueError("an argument holds a NUL byte or is over 65,536 characters")
        return value


def _check_allowed(svc: Services, team: str) -> None:
    if not svc.settings.commands.enabled:
        raise Forbidden("command jobs are not enabled on this server (commands.enabled)")
    if not svc.teams.policy(team).commands:
        raise Forbidden(f"team {team!r} may not submit command jobs (teams.{team}.commands)")


def _check_model(svc: Services, name: str) -> None:
    spec = svc.settings.models.get(name)
    if spec is None:
        raise ModelNotFound(f"model {name!r} is not served here; available: "
                            f"{', '.join(sorted(svc.settings.models))}", param="model")
    if spec.is_remote:
        raise InvalidRequest(f"model {name!r} is served by a provider: its runners have no "
                             "accelerator to lend; name a local model", param="model")


def _spec(svc: Services, body: CommandSubmission) -> CommandSpec:
    for name in body.env:
        problem = env_problem(name)
        if problem is not None:
            raise InvalidRequest(problem, param="env")
    commands = svc.settings.commands
    grace = commands.default_grace_s if body.grace_s is None else body.grace_s
    if grace > commands.max_grace_s:
        raise InvalidRequest(f"grace_s {grace:g} is past this server's limit of "
                             f"{commands.max_grace_s:g} s (commands.max_grace_s)",
                             param="grace_s")
    return CommandSpec(tuple(body.argv), body.env, grace, body.max_run_s)


@router.post("/commands", status_code=201, openapi_extra=json_body(CommandSubmission))
async def submit_command(
    request: Request,
    idempotency_key: str | None = Header(None, max_length=256),
    svc: Services = Depends(services),
) -> JSONResponse:
    """Submit a command job: 201 with the job (200 with the existing one for a repeated
    ``Idempotency-Key``). It runs below online work, on a runner of ``model`` that has nothing
    of its model's to do, and is stopped and requeued when that runner is reclaimed."""
    team = client_team(request)
    _check_allowed(svc, team)
    body = validate(CommandSubmission, parse_json(decode_utf8(await request.body())))
    model = body.model or svc.settings.default_model
    _check_model(svc, model)
    spec = _spec(svc, body)
    tier = tier_for(svc, team, body.tier, 1)
    if online_ask_takes(tier.name, svc.policy):
        raise InvalidRequest(f"tier {tier.name!r} is online work; a command job runs on lent "
                             "accelerators, below online work: choose a lower tier",
                             param="tier")
    parsed = ParsedJob(model=model, queue=command_queue(model), requests=[
        NewRequest(custom_id="command", endpoint=COMMAND_ENDPOINT, body=spec.body())])
    options = JobOptions.model_validate(body.model_dump(include=set(JobOptions.model_fields)))
    submitted = await enqueue(svc, team=team, tier=tier, parsed=parsed,
                              options=options.model_copy(update={"cache": False}),
                              idempotency_key=idempotency_key)
    return JSONResponse(job_json(submitted.job), status_code=201 if submitted.created else 200)


def render_log(chunks: list[LogChunk]) -> str:
    """A command job's logs as text: each run's output under a line naming the run."""
    parts: list[str] = []
    run, runs = None, 0
    for chunk in chunks:
        if chunk.lease_id != run:
            run, runs = chunk.lease_id, runs + 1
            parts.append(f"=== run {runs} on runner {chunk.runner_id} "
                         f"(lease {chunk.lease_id}) ===\n")
        parts.append(chunk.text)
    return "".join(parts)


@router.get("/jobs/{job_id}/logs", response_class=PlainTextResponse)
def job_logs(job_id: str, request: Request,
             svc: Services = Depends(services)) -> PlainTextResponse:
    """A command job's output, run by run, as its runners shipped it (up to the last
    shipment while it runs); empty for a job that is not a command or has not started."""
    owned_job(svc, job_id, client_team(request))
    return PlainTextResponse(render_log(svc.store.command_log(job_id)))

