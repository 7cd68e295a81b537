"""Anthropic-compatible ``POST /v1/messages``, served through the same online queue as chat
completions, so clients built on Anthropic's SDK (and Stoker's own Anthropic backend, pointed
at another Stoker) can use the pool. Text content only. ``stream: true`` answers with
Anthropic's server-sent events (``message_start``, ``content_block_delta`` as the runner
generates text, ``message_delta`` with the stop reason and usage, ``message_stop``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from stoker.api import access
from stoker.api.body import decode_utf8, invalid, json_body, parse_json
from stoker.api.errors import anthropic_error_type
from stoker.api.job_input import resolve_model_names
from stoker.api.online_answer import StreamedAnswer, answer, request_id_of
from stoker.api.openai.online import JSON_OR_EVENTS, submit_online, sync_tier
from stoker.api.rate_limit_headers import rate_limit_headers
from stoker.api.services import Services, client_team, services
from stoker.errors import InvalidRequest, StokerError
from stoker.openai_format import CHAT_COMPLETIONS, TextPart
from stoker.store import ResultRow

router = APIRouter(prefix="/v1", tags=["anthropic"],
                   dependencies=[Depends(access.client)])

_STOP_REASON = {"stop": "end_turn", "length": "max_tokens"}


class MessageIn(BaseModel):
    """One turn of the conversation."""

    role: Literal["user", "assistant"]
    content: str | list[TextPart]


class MessagesBody(BaseModel):
    """The body of ``POST /v1/messages``."""

    # A field Stoker would not honour is refused by name, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextPart] | None = None
    temperature: float = Field(1.0, ge=0.0, le=1.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop_sequences: list[str] | None = Field(None, max_length=4)
    stream: bool = False
    #: Taken and ignored: they change nothing about the answer.
    metadata: Any = None
    service_tier: Any = None
    #: Taken only when they ask for nothing different from the default.
    top_k: Any = None
    tools: Any = None
    tool_choice: Any = None
    thinking: Any = None

    @field_validator("top_k", "tools", "tool_choice", "thinking")
    @classmethod
    def _nothing_different(cls, value: Any, info: ValidationInfo) -> Any:
        return nothing_different(value, info)


def nothing_different(value: Any, info: ValidationInfo) -> Any:
    """Refuse a field Stoker cannot honour unless it asks for nothing different."""
    if value not in (None, [], {"type": "none"}, {"type": "disabled"}):
        raise ValueError(f"{info.field_name} is not supported by Stoker; leave it out")
    return value


class CountTokensBody(BaseModel):
    """The body of ``POST /v1/messages/count_tokens``: a message's input, no budget."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=256)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextPart] | None = None
    tools: Any = None
    tool_choice: Any = None
    thinking: Any = None

    @field_validator("tools", "tool_choice", "thinking")
    @classmethod
    def _nothing_different(cls, value: Any, info: ValidationInfo) -> Any:
        return nothing_different(value, info)


def _text(content: str | list[TextPart]) -> str:
    return content if isinstance(content, str) else "".join(p.text for p in content)


def chat_body(body: MessagesBody) -> dict[str, Any]:
    """The chat completion body that asks the same thing."""
    messages = [{"role": "system", "content": _text(body.system)}] if body.system else []
    messages += [{"role": m.role, "content": _text(m.content)} for m in body.messages]
    chat: dict[str, Any] = {"model": body.model, "messages": messages,
                            "max_tokens": body.max_tokens, "temperature": body.temperature,
                            "top_p": body.top_p}
    if body.stop_sequences:
        chat["stop"] = body.stop_sequences
    return chat


@router.post("/messages", response_model=None, responses=JSON_OR_EVENTS,
             openapi_extra=json_body(MessagesBody))
async def create_message(request: Request, svc: Services = Depends(services)
                         ) -> JSONResponse | StreamingResponse:
    """A message, as Anthropic's Messages API answers it (streamed on request)."""
    team = client_team(request)
    try:
        body = MessagesBody.model_validate(parse_json(decode_utf8(await request.body())))
    except ValidationError as exc:
        raise invalid(exc) from None
    tier = sync_tier(svc, team, request, None)  # Anthropic's service tiers map to none
    job_id, model = await submit_online(svc, team, CHAT_COMPLETIONS, [chat_body(body)],
                                        stream=body.stream, tier=tier)
    if body.stream:
        return StreamingResponse(_events(request, svc, job_id, model),
                                 media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          **await rate_limit_headers(svc, team)})
    row = await answer(request, svc, job_id)
    return JSONResponse(message_json(row, model), headers=await rate_limit_headers(svc, team))


@router.post("/messages/count_tokens", openapi_extra=json_body(CountTokensBody))
async def count_tokens(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """How many input tokens a message would take, by the model's own tokenizer and chat
    template: a request with no token budget, answered by a runner without a decode step."""
    team = client_team(request)
    try:
        body = CountTokensBody.model_validate(parse_json(decode_utf8(await request.body())))
    except ValidationError as exc:
        raise invalid(exc) from None
    asked = MessagesBody(model=body.model, max_tokens=1, messages=body.messages,
                         system=body.system)
    chat = {**chat_body(asked), "max_tokens": 0}
    model = resolve_model_names({body.model}, default_model=svc.settings.default_model,
                                known=set(svc.settings.models))
    if svc.settings.models[model].is_remote:
        raise InvalidRequest(f"count_tokens is answered for local models; {body.model!r} is "
                             "served by a provider", param="model")
    tier = sync_tier(svc, team, request, None)
    job_id, _ = await submit_online(svc, team, CHAT_COMPLETIONS, [chat], tier=tier)
    row = await answer(request, svc, job_id)
    return {"input_tokens": row.prompt_tokens}


def message_json(row: ResultRow, model: str) -> dict[str, Any]:
    """A succeeded request's answer as Anthropic's ``message`` object."""
    return {"id": f"msg_{row.request_id}", "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": row.text or ""}],
            "stop_reason": _stop_reason(row), "stop_sequence": row.stop_sequence,
            "usage": {"input_tokens": row.prompt_tokens,
                      "output_tokens": row.completion_tokens}}


def _stop_reason(row: ResultRow) -> str:
    if row.stop_sequence is not None:
        return "stop_sequence"
    return _STOP_REASON.get(row.finish_reason or "stop", "end_turn")


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


async def _events(request: Request, svc: Services, job_id: str,
                  model: str) -> AsyncIterator[str]:
    request_id = await request_id_of(svc, job_id)
    yield _event("message_start", {"message": {
        "id": f"msg_{request_id}", "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 0}}})
    yield _event("content_block_start", {"index": 0,
                                         "content_block": {"type": "text", "text": ""}})
    streamed = StreamedAnswer(request, svc, job_id, request_id)
    try:
        async for piece in streamed.pieces():
            yield _text_delta(piece)
    except StokerError as exc:
        yield _event("error", {"error": {"type": anthropic_error_type(exc.status_code),
                                         "message": exc.message}})
        return
    row = streamed.row
    assert row is not None  # set once the pieces end
    yield _event("content_block_stop", {"index": 0})
    yield _event("message_delta", {
        "delta": {"stop_reason": _stop_reason(row), "stop_sequence": row.stop_sequence},
        "usage": {"input_tokens": row.prompt_tokens, "output_tokens": row.completion_tokens}})
    yield _event("message_stop", {})


def _text_delta(text: str) -> str:
    return _event("content_block_delta", {"index": 0,
                                          "delta": {"type": "text_delta", "text": text}})
