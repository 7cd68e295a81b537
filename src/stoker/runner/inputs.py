"""Stored request bodies to backend inputs."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from stoker.openai_format import BODY_BY_ENDPOINT, ChatCompletionBody, ChatMessageIn
from stoker.runner.backends.protocol import ChatMessage, GenerationInput


class UnrunnableRequest(ValueError):
    """A leased request whose body cannot be run (it should have been refused at submission)."""


def generation_input(endpoint: str, body: dict[str, Any]) -> GenerationInput:
    """The backend input for one request body sent to ``endpoint``."""
    schema = BODY_BY_ENDPOINT.get(endpoint)
    if schema is None:
        raise UnrunnableRequest(f"unsupported endpoint {endpoint!r}")
    try:
        parsed = schema.model_validate(body)
    except ValidationError as exc:
        raise UnrunnableRequest(f"invalid body: {exc.errors()[0]['msg']}") from None
    wanted_format = parsed.response_format
    common: dict[str, Any] = {
        "response_format": wanted_format.model_dump(mode="json", exclude_none=True,
                                                    by_alias=True)
        if wanted_format is not None and wanted_format.type != "text" else None,
        "max_tokens": parsed.token_limit(),
        "temperature": parsed.temperature,
        "top_p": parsed.top_p,
        "seed": parsed.seed,
        "stop": tuple(parsed.stop or ()),
    }
    if isinstance(parsed, ChatCompletionBody):
        return GenerationInput(
            messages=tuple(_message(m) for m in parsed.messages),
            logprobs=parsed.logprobs_wanted(),
            tools=tuple(t.model_dump(mode="json", exclude_none=True)
                        for t in parsed.tools or ()),
            tool_choice=(parsed.tool_choice if isinstance(parsed.tool_choice, str | None)
                         else parsed.tool_choice.model_dump(mode="json")),
            parallel_tool_calls=parsed.parallel_tool_calls, **common)
    common.update(logprobs=parsed.logprobs, echo=bool(parsed.echo))
    if isinstance(parsed.prompt, list):
        return GenerationInput(prompt_ids=tuple(parsed.prompt), **common)
    return GenerationInput(prompt=parsed.prompt, **common)


def _message(message: ChatMessageIn) -> ChatMessage:
    return ChatMessage(message.role, message.text(),
                       tool_calls=tuple(c.model_dump(mode="json")
                                        for c in message.tool_calls or ()),
                       tool_call_id=message.tool_call_id, name=message.name)
