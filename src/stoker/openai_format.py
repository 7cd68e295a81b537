"""The OpenAI request and response shapes Stoker speaks: batch input lines, chat and text
completion bodies, and the output lines and response bodies it writes.

Shared by the API (which validates what clients send) and the runner (which reads what the API
stored), so both agree on one definition.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CHAT_COMPLETIONS = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
DEFAULT_MAX_TOKENS = 64
#: No model generates more in one completion; a larger ask is a client's mistake, refused when
#: it is sent (each model's own ``max_new_tokens`` is checked where the model is known).
MAX_TOKENS_CEILING = 1_048_576


class TextPart(BaseModel):
    """A text part of a message's content list."""

    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    """One message of a chat request. Content is a string or a list of text parts."""

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        """The message's content as one string."""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class _SamplingBody(BaseModel):
    # Unknown fields (user, logit_bias, …) are accepted and ignored, as many tools send them.
    model_config = ConfigDict(extra="ignore")

    model: str = Field("default", min_length=1, max_length=256)
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING)] | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("stop takes at most 4 non-empty strings")
        return stops

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int) -> int:
        if value != 1:
            raise ValueError("only n=1 is supported")
        return value

    def token_limit(self) -> int:
        """The completion's token budget: max_completion_tokens, max_tokens, or the default."""
        return self.max_completion_tokens or self.max_tokens or DEFAULT_MAX_TOKENS


class ChatCompletionBody(_SamplingBody):
    """The body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessageIn] = Field(min_length=1)


class CompletionBody(_SamplingBody):
    """The body of ``POST /v1/completions``; ``prompt`` is a string or a list of one string."""

    prompt: str

    @model_validator(mode="before")
    @classmethod
    def _single_prompt(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("prompt"), list):
            prompts = data["prompt"]
            if len(prompts) != 1 or not isinstance(prompts[0], str):
                raise ValueError("prompt must be a string or a list of exactly one string")
            data = {**data, "prompt": prompts[0]}
        return data


BODY_BY_ENDPOINT: dict[str, type[ChatCompletionBody] | type[CompletionBody]] = {
    CHAT_COMPLETIONS: ChatCompletionBody,
    COMPLETIONS: CompletionBody,
}


def token_budget(body: dict[str, Any]) -> int:
    """The completion tokens a normalised body asks for (its default when it names none)."""
    return int(body.get("max_completion_tokens") or body.get("max_tokens")
               or DEFAULT_MAX_TOKENS)


def normalised_body(endpoint: str, body: Any) -> tuple[dict[str, Any], bool]:
    """Validate a request body for ``endpoint``: the body as stored (defaults filled in, nulls
    left out) and whether it asks to stream. Raises pydantic's ValidationError."""
    parsed = BODY_BY_ENDPOINT[endpoint].model_validate(body)
    return parsed.model_dump(mode="json", exclude_none=True), parsed.stream


class BatchInputLine(BaseModel):
    """One line of an OpenAI Batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: Literal["/v1/chat/completions", "/v1/completions"]
    body: dict[str, Any]


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The ``usage`` object of a response body."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_response_body(
    *,
    endpoint: str,
    request_id: str,
    model: str,
    created: int,
    text: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> dict[str, Any]:
    """A ``chat.completion`` or ``text_completion`` body, as OpenAI shapes them."""
    if endpoint == CHAT_COMPLETIONS:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish_reason,
            "logprobs": None,
        }
        kind, prefix = "chat.completion", "chatcmpl"
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish_reason, "logprobs": None}
        kind, prefix = "text_completion", "cmpl"
    return {
        "id": f"{prefix}-{request_id}",
        "object": kind,
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def error_body(message: str, *, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
