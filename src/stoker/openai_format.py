"""The OpenAI request and response shapes Stoker speaks: batch input lines, chat and text
completion bodies, and the output lines and response bodies it writes.

Shared by the API (which validates what clients send) and the runner (which reads what the API
stored), so both agree on one definition.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from stoker.openai_tools import ToolCall, ToolChoice, ToolSpec

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
    """One message of a chat request. Content is a string or a list of text parts; an
    assistant message may carry the ``tool_calls`` it made (and then no content), and a
    ``tool`` message answers one of them (``tool_call_id``)."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    #: The participant's name: passed on to providers; a local chat template has no place
    #: for it, so there it changes nothing.
    name: str | None = Field(None, min_length=1, max_length=64)
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(None, min_length=1)
    #: What OpenAI's SDK puts in an assistant message it hands back: no part of the prompt.
    refusal: str | None = Field(None, exclude=True)
    annotations: list[Any] | None = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_absent(cls, data: Any) -> Any:
        # A message taken back from a response carries its unset fields as nulls.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k == "content"}
        return data

    @model_validator(mode="after")
    def _tool_fields_where_they_belong(self) -> ChatMessageIn:
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only an assistant message carries tool_calls")
        if (self.role == "tool") != (self.tool_call_id is not None):
            raise ValueError("a tool message needs tool_call_id, and only a tool message has "
                             "one")
        if self.content is None and not self.tool_calls:
            raise ValueError("content is required (it may be null only in an assistant "
                             "message with tool_calls)")
        return self

    def text(self) -> str:
        """The message's content as one string ("" for a message that only calls tools)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class JsonSchemaSpec(BaseModel):
    """OpenAI's ``response_format.json_schema``: a named JSON Schema for the answer."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    #: ``schema`` on the wire (a name pydantic keeps for itself).
    json_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"},
                                        alias="schema")
    strict: bool | None = None


class ResponseFormat(BaseModel):
    """How the answer is shaped: free ``text``, any JSON object (``json_object``), or JSON
    matching ``json_schema``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaSpec | None = None

    @model_validator(mode="after")
    def _schema_with_its_type(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema goes with type 'json_schema', and only with it")
        return self

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer must match (None: free text)."""
        if self.type == "json_object":
            return {"type": "object"}
        if self.json_schema is not None:
            return self.json_schema.json_schema
        return None


#: Fields Stoker cannot honour yet, taken only when they ask for nothing different from the
#: default (what tools send by habit: ``logprobs: false``, ``presence_penalty: 0``, …).
NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "best_of": (1,),
    "presence_penalty": (0,), "frequency_penalty": (0,), "logit_bias": ({},),
    "suffix": ("",), "functions": ([],), "function_call": ("none",),
}
#: Fields whose ``null`` is an error rather than "the default".
_REQUIRED = ("model", "messages", "prompt")


class _SamplingBody(BaseModel):
    # A field Stoker would not honour is refused by name, never silently dropped.
    model_config = ConfigDict(extra="forbid")

    model: str = Field("default", min_length=1, max_length=256)
    max_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=MAX_TOKENS_CEILING)] | None = None
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    stop: str | list[str] | None = None
    n: int = 1
    stream: bool = False
    # Left out of the stored body: they change nothing about the answer (README: "Drop-in"),
    # or, as service_tier, the API read them to choose the call's tier.
    user: Any = Field(None, exclude=True)
    metadata: Any = Field(None, exclude=True)
    store: Any = Field(None, exclude=True)
    stream_options: Any = Field(None, exclude=True)
    service_tier: Any = Field(None, exclude=True)
    best_of: Any = Field(None, exclude=True)
    presence_penalty: Any = Field(None, exclude=True)
    frequency_penalty: Any = Field(None, exclude=True)
    logit_bias: Any = Field(None, exclude=True)
    #: JSON mode or a JSON schema the answer must match (constrained decoding on local
    #: models; passed on to OpenAI-compatible providers). ``{"type": "text"}`` is the default.
    response_format: ResponseFormat | None = None
    suffix: Any = Field(None, exclude=True)
    functions: Any = Field(None, exclude=True)
    function_call: Any = Field(None, exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data: Any) -> Any:
        # OpenAI takes null for any optional field and means its default.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in _REQUIRED}
        return data

    @field_validator(*NEUTRAL_VALUES)
    @classmethod
    def _nothing_different(cls, value: Any, info: ValidationInfo) -> Any:
        if value not in NEUTRAL_VALUES[str(info.field_name)]:
            raise ValueError(f"{info.field_name} is not supported by Stoker; leave it out "
                             f"(or send {NEUTRAL_VALUES[str(info.field_name)][0]!r})")
        return value

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
        return token_budget(self.model_dump(include={"max_tokens", "max_completion_tokens"}))


class ChatCompletionBody(_SamplingBody):
    """The body of ``POST /v1/chat/completions``."""

    messages: list[ChatMessageIn] = Field(min_length=1)
    #: ``0`` answers with no text, only the prompt's token count (how Anthropic's
    #: ``count_tokens`` is answered: by the model's own chat template).
    max_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_CEILING)] | None = None
    #: Each generated token's log-probability, with ``top_logprobs`` alternatives.
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    #: Functions the model may call, and how it is asked to: passed on to providers;
    #: refused by local models (see :mod:`stoker.openai_tools`).
    tools: list[ToolSpec] | None = Field(None, max_length=128)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None

    @model_validator(mode="after")
    def _alternatives_need_logprobs(self) -> ChatCompletionBody:
        if not self.logprobs:
            if self.top_logprobs:
                raise ValueError("top_logprobs needs logprobs: true")
            # Stored as if left out, so a habitual ``logprobs: false`` keeps its cache key.
            self.logprobs = self.top_logprobs = None
        return self

    @field_validator("tool_choice")
    @classmethod
    def _tool_choice_needs_tools(cls, value: ToolChoice | None,
                                 info: ValidationInfo) -> ToolChoice | None:
        if not info.data.get("tools") and value not in (None, "none"):
            raise ValueError("tool_choice needs tools")
        return value

    @model_validator(mode="after")
    def _no_tools_is_none(self) -> ChatCompletionBody:
        if not self.tools:
            # Stored as if left out: ``tools: []`` and ``tool_choice: "none"`` offer nothing.
            self.tools = self.tool_choice = self.parallel_tool_calls = None
        return self

    def logprobs_wanted(self) -> int | None:
        """How many alternatives per token are wanted (None: no log-probabilities)."""
        return (self.top_logprobs or 0) if self.logprobs else None


class CompletionBody(_SamplingBody):
    """The body of ``POST /v1/completions`` with one prompt: a string, or token ids (a list
    of one string or of one token list is taken for the same; see :func:`split_prompts` for
    a body with several)."""

    prompt: str | list[Annotated[int, Field(ge=0)]]
    #: ``max_tokens: 0`` with ``echo`` scores a prompt without generating (log-likelihoods).
    max_tokens: Annotated[int, Field(ge=0, le=MAX_TOKENS_CEILING)] | None = None
    #: Each token's log-probability with this many alternatives (OpenAI allows up to 5).
    logprobs: int | None = Field(None, ge=0, le=5)
    #: The prompt comes back before the completion (its tokens too, with ``logprobs``).
    echo: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _single_prompt(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("prompt"), list):
            prompts = data["prompt"]
            if len(prompts) == 1 and isinstance(prompts[0], str | list):
                data = {**data, "prompt": prompts[0]}
            elif not prompts or not all(isinstance(t, int) for t in prompts):
                raise ValueError("prompt must be a string, a list of token ids, or a list of "
                                 "exactly one of those (several prompts are answered together "
                                 "on /v1/completions, not in a batch line)")
        if isinstance(data, dict) and data.get("echo") is False:
            data = {k: v for k, v in data.items() if k != "echo"}
        return data

    @field_validator("prompt")
    @classmethod
    def _some_tokens(cls, value: str | list[int]) -> str | list[int]:
        if isinstance(value, list) and not value:
            raise ValueError("a token-id prompt needs at least one token")
        return value


def split_prompts(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``/v1/completions`` body with several prompts (a list of strings or of token lists)
    as one body per prompt, in order; any other body as it is."""
    prompts = body.get("prompt")
    if (isinstance(prompts, list) and len(prompts) > 1
            and all(isinstance(p, str | list) for p in prompts)):
        return [{**body, "prompt": p} for p in prompts]
    return [body]


BODY_BY_ENDPOINT: dict[str, type[ChatCompletionBody] | type[CompletionBody]] = {
    CHAT_COMPLETIONS: ChatCompletionBody,
    COMPLETIONS: CompletionBody,
}


def token_budget(body: dict[str, Any]) -> int:
    """The completion tokens a normalised body asks for (its default when it names none)."""
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            return int(body[name])
    return DEFAULT_MAX_TOKENS


def normalised_body(endpoint: str, body: Any) -> tuple[dict[str, Any], bool]:
    """Validate a request body for ``endpoint``: the body as stored (defaults filled in, nulls
    left out) and whether it asks to stream. Raises pydantic's ValidationError."""
    parsed = BODY_BY_ENDPOINT[endpoint].model_validate(body)
    return parsed.model_dump(mode="json", exclude_none=True, by_alias=True), parsed.stream


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


#: How OpenAI's context-length refusals begin; tools (litellm's context-window fallback) look
#: for these words, so a prompt too long for a model is told the same way here.
CONTEXT_LENGTH_OPENING = "This model's maximum context length is "


def context_length_message(context_tokens: int, prompt_tokens: int, max_tokens: int) -> str:
    """OpenAI's wording for a prompt and token budget that do not fit the context."""
    return (f"{CONTEXT_LENGTH_OPENING}{context_tokens} tokens. However, you requested "
            f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or "
            f"completion.")


def error_body(message: str, *, kind: str, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error object."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
