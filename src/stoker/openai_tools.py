"""OpenAI's tool calling, as Stoker takes it: the ``tools`` a chat request offers, how it asks
for them (``tool_choice``), the calls an assistant message made and the ``tool`` messages that
answer them.

Stoker passes tools to providers that run them (any OpenAI-compatible endpoint); a local model
refuses them by name (see :data:`TOOLS_REFUSED_OPENING`), since turning its text into calls is
specific to each model family.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: How a runner's refusal of tools begins, so the API can name the field (``param``).
TOOLS_REFUSED_OPENING = "tools: "


class FunctionSpec(BaseModel):
    """A function the model may call: its name, what it does and its JSON Schema."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(BaseModel):
    """One entry of ``tools``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(BaseModel):
    """The function ``tool_choice`` forces."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64)


class NamedToolChoice(BaseModel):
    """``tool_choice`` naming one function."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class CalledFunction(BaseModel):
    """The function an assistant called and its arguments (a JSON text, as OpenAI sends it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str


class ToolCall(BaseModel):
    """One call in an assistant message's ``tool_calls``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    type: Literal["function"] = "function"
    function: CalledFunction


def tools_refused(*, template_has_tools: bool) -> str:
    """A local model's refusal of ``tools`` or tool messages, naming the field."""
    if template_has_tools:
        reason = ("Stoker does not turn a local model's text into tool calls, which is "
                  "specific to each model family")
    else:
        reason = "its chat template has no tool support"
    return (f"{TOOLS_REFUSED_OPENING}this model runs locally and cannot take tools or tool "
            f"messages: {reason}. Send them to a provider-backed model, or leave them out")
