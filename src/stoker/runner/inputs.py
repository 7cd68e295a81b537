"""Stored request bodies to backend inputs."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from stoker.openai_format import BODY_BY_ENDPOINT, ChatCompletionBody
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
        messages = tuple(ChatMessage(m.role, m.text()) for m in parsed.messages)
        return GenerationInput(messages=messages, logprobs=parsed.logprobs_wanted(), **common)
    common.update(logprobs=parsed.logprobs, echo=bool(parsed.echo))
    if isinstance(parsed.prompt, list):
        return GenerationInput(prompt_ids=tuple(parsed.prompt), **common)
    return GenerationInput(prompt=parsed.prompt, **common)
