"""Anthropic-compatible ``POST /v1/messages``, served through the same online queue as chat
completions, so clients built on Anthropic's SDK (and Stoker's own Anthropic backend, pointed
at another Stoker) can use the pool. Text content only; no streaming."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stoker.api import access
from stoker.api.body import decode_utf8, describe, json_body, parse_json
from stoker.api.openai_online import answer, submit_online
from stoker.api.services import Services, client_team, services
from stoker.errors import Unprocessable
from stoker.openai_format import CHAT_COMPLETIONS, TextPart

router = APIRouter(prefix="/v1", tags=["anthropic"],
                   dependencies=[Depends(access.client)])

_STOP_REASON = {"stop": "end_turn", "length": "max_tokens"}


class MessageIn(BaseModel):
    """One turn of the conversation."""

    role: Literal["user", "assistant"]
    content: str | list[TextPart]


class MessagesBody(BaseModel):
    """The body of ``POST /v1/messages``."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[MessageIn] = Field(min_length=1)
    system: str | list[TextPart] | None = None
    temperature: float = Field(1.0, ge=0.0, le=1.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop_sequences: list[str] | None = Field(None, max_length=4)
    stream: bool = False


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


@router.post("/messages", openapi_extra=json_body(MessagesBody))
async def create_message(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """A message, as Anthropic's Messages API answers it."""
    team = client_team(request)
    try:
        body = MessagesBody.model_validate(parse_json(decode_utf8(await request.body())))
    except ValidationError as exc:
        raise Unprocessable(f"body: {describe(exc)}") from None
    if body.stream:
        raise Unprocessable("stream is not supported on /v1/messages; use "
                            "/v1/chat/completions with stream: true")
    job_id, model = await submit_online(svc, team, CHAT_COMPLETIONS, chat_body(body))
    row = await answer(request, svc, job_id)
    stop = row.finish_reason or "stop"
    return {"id": f"msg_{row.request_id}", "type": "message", "role": "assistant",
            "model": model, "content": [{"type": "text", "text": row.text or ""}],
            "stop_reason": _STOP_REASON.get(stop, "end_turn"), "stop_sequence": None,
            "usage": {"input_tokens": row.prompt_tokens,
                      "output_tokens": row.completion_tokens}}
