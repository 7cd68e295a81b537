"""What a model backend takes and gives back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One message of a chat prompt; in a tool exchange, the calls an assistant made (OpenAI's
    ``tool_calls`` objects) or the call a ``tool`` message answers."""

    role: str
    content: str
    tool_calls: tuple[Mapping[str, Any], ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    def uses_tools(self) -> bool:
        """Whether this message is part of a tool exchange."""
        return bool(self.tool_calls) or self.role == "tool"


@dataclass(frozen=True, slots=True)
class GenerationInput:
    """One prompt and its sampling parameters. Exactly one of ``prompt`` and ``messages``."""

    prompt: str | None = None
    messages: tuple[ChatMessage, ...] | None = None
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)
    #: A prompt given as token ids (OpenAI's token-array prompts), used as they are.
    prompt_ids: tuple[int, ...] | None = None
    #: Log-probabilities wanted: None for none, else each token's and this many of the most
    #: likely alternatives at each position.
    logprobs: int | None = None
    #: The prompt comes back before the completion (with its tokens' log-probabilities when
    #: ``logprobs`` is set): how a log-likelihood is scored.
    echo: bool = False
    #: OpenAI's ``response_format`` when it asks for JSON (``json_object`` or ``json_schema``):
    #: a local model is constrained to it token by token; a provider gets it as it is.
    response_format: Mapping[str, Any] | None = None
    #: OpenAI's ``tools`` (function specs) and ``tool_choice``/``parallel_tool_calls``, as sent.
    tools: tuple[Mapping[str, Any], ...] = ()
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None

    def uses_tools(self) -> bool:
        """Whether the input offers tools or carries a tool exchange in its messages."""
        return bool(self.tools) or any(m.uses_tools() for m in self.messages or ())

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON Schema the answer must match (None: free text)."""
        found = self.response_format
        if not found or found.get("type") == "text":
            return None
        if found.get("type") == "json_object":
            return {"type": "object"}
        return dict((found.get("json_schema") or {}).get("schema") or {"type": "object"})


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One token of a text with its log-probability (None for a prompt's first token, which
    nothing predicts) and the most likely tokens at its position."""

    token: str
    logprob: float | None
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class GenerationOutput:
    """The completion of one input, with its token counts."""

    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    #: Set when this input failed; the others of the batch still count.
    error: str | None = None
    #: Whether another attempt may succeed (a provider outage), or the input itself is refused.
    retryable: bool = False
    #: How many times a provider answered 429 while this input was being sent.
    rate_limited: int = 0
    #: The stop string that ended the text, when one did (``finish_reason`` is then "stop").
    stop_sequence: str | None = None
    #: Each token's log-probability, when the input asked for them (the prompt's first when
    #: it asked for ``echo``).
    logprobs: tuple[TokenLogprob, ...] | None = None
    #: The tools the model called (OpenAI's ``tool_calls`` objects; ``finish_reason`` is then
    #: "tool_calls"), None when it called none.
    tool_calls: tuple[Mapping[str, Any], ...] | None = None


class Backend(Protocol):
    """A loaded model that completes a batch of inputs in one pass."""

    @property
    def max_context_tokens(self) -> int:
        """The longest prompt plus completion the model takes."""
        ...

    def generate(self, inputs: Sequence[GenerationInput]) -> list[GenerationOutput]:
        """Complete every input; the i-th output answers the i-th input.

        An input the model cannot take (a prompt too long for its context) gets an output with
        ``error`` set; the others still run. Exceptions mean the whole batch failed.
        """
        ...


class DecodeLoop(Protocol):
    """A running decode loop that inputs join and leave between steps (continuous batching)."""

    @property
    def in_flight(self) -> int:
        """Rows decoding or waiting to join at the next step."""
        ...

    def join(self, key: str, spec: GenerationInput) -> GenerationOutput | None:
        """Add an input under ``key``; an input the model cannot take is answered at once."""
        ...

    def step(self) -> list[tuple[str, GenerationOutput]]:
        """Advance every row one token: the rows that finished, with their outputs."""
        ...

    def partial_text(self, key: str) -> str | None:
        """The text a row in flight has produced so far (None once it left the loop)."""
        ...

    def abandon(self, keys: set[str]) -> list[str]:
        """Drop the rows under ``keys`` unanswered (their work goes back to the queue); the
        keys that were in the loop."""
        ...


@runtime_checkable
class ContinuousBackend(Backend, Protocol):
    """A backend whose rows can join a running loop."""

    def open_loop(self) -> DecodeLoop:
        """A new, empty decode loop."""
        ...
