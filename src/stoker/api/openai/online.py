"""OpenAI-compatible online calls: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``.

Each call is a one-request job in the online tier, so it shares the pool with batch work and
goes first (or in the tier the call asks for). ``stream: true`` answers as server-sent events
(see :mod:`stoker.api.openai.online_stream`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from stoker.api import access
from stoker.api.body import decode_utf8, invalid, json_body, parse_json
from stoker.api.job_input import JobOptions, ParsedJob, resolve_model
from stoker.api.online_answer import answer_all
from stoker.api.openai.online_stream import AnswerStream
from stoker.api.rate_limit_headers import rate_limit_headers
from stoker.api.render import choice_of
from stoker.api.services import Services, client_team, services
from stoker.api.submission import enqueue, tier_for
from stoker.core.tiers import SERVICE_TIERS, sync_call_tier
from stoker.errors import InvalidRequest, NotFound, RateLimited
from stoker.openai_format import (
    CHAT_COMPLETIONS,
    COMPLETIONS,
    ChatCompletionBody,
    CompletionBody,
    normalised_body,
    split_prompts,
)
from stoker.openai_responses import completion_response_body
from stoker.store import NewRequest, ResultRow

router = APIRouter(prefix="/v1", tags=["openai"],
                   dependencies=[Depends(access.client)])

#: An online call answers JSON, or server-sent events with ``stream: true``.
JSON_OR_EVENTS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/event-stream": {}}}}


@router.get("/models")
def list_models(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """The models this server serves, as OpenAI lists them."""
    client_team(request)
    return {"object": "list", "data": [_model_json(svc, name) for name in svc.settings.models]}


@router.get("/models/{model:path}")
def get_model(model: str, request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """One served model."""
    client_team(request)
    if model == "default":
        model = svc.settings.default_model  # what requests naming "default" are served by
    if model not in svc.settings.models:
        raise NotFound(f"model {model!r} is not served here; see GET /v1/models")
    return _model_json(svc, model)


def _model_json(svc: Services, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(svc.started_at), "owned_by": "stoker"}


@router.post("/chat/completions", response_model=None, responses=JSON_OR_EVENTS,
             openapi_extra=json_body(ChatCompletionBody))
async def chat_completions(request: Request,
                           svc: Services = Depends(services)) -> JSONResponse | StreamingResponse:
    """A chat completion through the queue, in the online tier."""
    return await _online(request, svc, CHAT_COMPLETIONS)


@router.post("/completions", response_model=None, responses=JSON_OR_EVENTS,
             openapi_extra=json_body(CompletionBody))
async def completions(request: Request,
                      svc: Services = Depends(services)) -> JSONResponse | StreamingResponse:
    """A text completion through the queue, in the online tier."""
    return await _online(request, svc, COMPLETIONS)


async def _online(request: Request, svc: Services,
                  endpoint: str) -> JSONResponse | StreamingResponse:
    team = client_team(request)
    raw = parse_json(decode_utf8(await request.body()))
    if not isinstance(raw, dict):
        raise InvalidRequest("the body must be a JSON object")
    stream = raw.get("stream") is True
    options = raw.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    body = {k: v for k, v in raw.items() if k not in ("stream", "stream_options")}
    bodies = split_prompts(body) if endpoint == COMPLETIONS else [body]
    tier = sync_tier(svc, team, request, raw.get("service_tier"))
    job_id, model = await submit_online(svc, team, endpoint, bodies, stream=stream, tier=tier)
    if stream:
        answer = AnswerStream(request, svc, job_id, endpoint, model, include_usage)
        # Text as it is generated; whole choices where a choice is more than text (several
        # prompts, log-probabilities, an echoed prompt).
        events = (answer.whole_choices() if len(bodies) > 1 or _scores_tokens(body)
                  else answer.text_as_generated())
        return StreamingResponse(
            events, media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", **await rate_limit_headers(svc, team)})
    rows = await answer_all(request, svc, job_id)
    return JSONResponse(_response_body(rows, endpoint, model),
                        headers=await rate_limit_headers(svc, team))


def _scores_tokens(body: dict[str, Any]) -> bool:
    logprobs = body.get("logprobs")
    return (logprobs is not None and logprobs is not False) or body.get("echo") is True


def sync_tier(svc: Services, team: str, request: Request, service_tier: Any) -> str:
    """The tier a synchronous call goes to (:func:`stoker.core.tiers.sync_call_tier`): the
    ``X-Stoker-Tier`` header, OpenAI's ``service_tier``, or the team's ``sync_tier``."""
    scheduling = svc.settings.scheduling
    asked = service_tier if isinstance(service_tier, str) else None
    tier = sync_call_tier(
        asked_tier=request.headers.get("x-stoker-tier"), service_tier=asked,
        team_default=svc.teams.policy(team).sync_tier or scheduling.online_tier,
        online_tier=scheduling.online_tier, flex_tier=scheduling.flex_tier)
    if tier is None or (service_tier is not None and asked is None):
        raise InvalidRequest(f"service_tier must be one of {', '.join(SERVICE_TIERS)}",
                             param="service_tier")
    return tier


async def submit_online(svc: Services, team: str, endpoint: str,
                        bodies: list[dict[str, Any]], *, stream: bool = False,
                        tier: str | None = None) -> tuple[str, str]:
    """Validate a synchronous call (one request per body: several prompts of one completion
    call) and queue it as one job in ``tier`` (default: the online tier): (job id, model).
    ``stream``: its runner sends the text as it is generated."""
    requests = []
    for i, body in enumerate(bodies):
        try:
            normalised, _ = normalised_body(endpoint, body)
        except ValidationError as exc:
            raise invalid(exc) from None
        normalised["stream"] = stream
        custom_id = "online" if len(bodies) == 1 else f"prompt-{i}"
        requests.append(NewRequest(custom_id=custom_id, endpoint=endpoint, body=normalised))
    model = resolve_model(requests, default_model=svc.settings.default_model,
                          known=set(svc.settings.models))
    tier_of_call = tier_for(svc, team, tier or svc.settings.scheduling.online_tier,
                            len(requests))
    try:
        submitted = await enqueue(svc, team=team, tier=tier_of_call,
                                  parsed=ParsedJob(model=model, requests=requests),
                                  options=JobOptions())
    except RateLimited as exc:
        exc.headers.update(await rate_limit_headers(svc, team))
        raise
    return submitted.job.id, model


def _response_body(rows: list[ResultRow], endpoint: str, model: str) -> dict[str, Any]:
    return completion_response_body(
        endpoint=endpoint, request_id=rows[0].request_id, model=model,
        created=int(max(r.finished_at or 0 for r in rows)),
        choices=[choice_of(r) for r in rows],
        prompt_tokens=sum(r.prompt_tokens for r in rows),
        completion_tokens=sum(r.completion_tokens for r in rows))
