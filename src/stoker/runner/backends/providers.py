"""Provider backends: any OpenAI-compatible endpoint, and Anthropic's Messages API."""

from __future__ import annotations

from typing import Any

from stoker.openai_tools import TOOLS_REFUSED_OPENING
from stoker.runner.backends.protocol import (
    ChatMessage,
    GenerationInput,
    GenerationOutput,
    TokenLogprob,
)
from stoker.runner.backends.remote import ProviderCall, ProviderRefused, RemoteBackend

ANTHROPIC_VERSION = "2023-06-01"
_ANTHROPIC_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                     "tool_use": "tool_calls", "refusal": "content_filter"}


def _sampling(spec: GenerationInput) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": spec.max_tokens, "temperature": spec.temperature,
                            "top_p": spec.top_p}
    if spec.stop:
        body["stop"] = list(spec.stop)
    return body


def remote_logprobs(found: Any) -> tuple[TokenLogprob, ...] | None:
    """The log-probabilities of an OpenAI answer's choice, in either of its shapes (chat's
    ``content`` list, completions' parallel lists); None when it has none."""
    if not isinstance(found, dict):
        return None
    if isinstance(found.get("content"), list):
        return tuple(TokenLogprob(str(e["token"]), float(e["logprob"]),
                                  tuple((str(t["token"]), float(t["logprob"]))
                                        for t in e.get("top_logprobs") or ()))
                     for e in found["content"])
    tops = found.get("top_logprobs") or [None] * len(found.get("tokens") or [])
    return tuple(TokenLogprob(str(token), None if lp is None else float(lp),
                              tuple((str(t), float(v)) for t, v in (top or {}).items()))
                 for token, lp, top in zip(found.get("tokens") or [],
                                           found.get("token_logprobs") or [], tops,
                                           strict=True))


def _openai_message(message: ChatMessage) -> dict[str, Any]:
    """A message as OpenAI's chat API takes it, tool calls and answers included."""
    sent: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        sent["tool_calls"] = [dict(c) for c in message.tool_calls]
        sent["content"] = message.content or None
    if message.tool_call_id is not None:
        sent["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        sent["name"] = message.name
    return sent


def _tool_fields(spec: GenerationInput) -> dict[str, Any]:
    """``tools``, ``tool_choice`` and ``parallel_tool_calls`` as the request sent them."""
    fields: dict[str, Any] = {}
    if spec.tools:
        fields["tools"] = [dict(t) for t in spec.tools]
    if spec.tool_choice is not None:
        fields["tool_choice"] = (spec.tool_choice if isinstance(spec.tool_choice, str)
                                 else dict(spec.tool_choice))
    if spec.parallel_tool_calls is not None:
        fields["parallel_tool_calls"] = spec.parallel_tool_calls
    return fields


def _tool_calls(message: Any) -> tuple[dict[str, Any], ...] | None:
    """The function calls of a chat answer's message (None when it made none)."""
    found = message.get("tool_calls") if isinstance(message, dict) else None
    if not isinstance(found, list) or not found:
        return None
    try:
        return tuple({"id": str(c["id"]), "type": "function",
                      "function": {"name": str(c["function"]["name"]),
                                   "arguments": str(c["function"].get("arguments") or "")}}
                     for c in found)
    except (KeyError, TypeError):
        raise ProviderRefused("the answer's tool_calls are not OpenAI's shape") from None


class OpenAICompatibleBackend(RemoteBackend):
    """``base_url`` is the API root that ``/chat/completions`` hangs off (e.g. ``…/v1``)."""

    def build_call(self, spec: GenerationInput) -> ProviderCall:
        """A chat completion for messages, a text completion for a prompt."""
        body = {"model": self.endpoint.remote_model, **_sampling(spec)}
        if spec.seed is not None:
            body["seed"] = spec.seed
        headers = {}
        if self.endpoint.api_key:
            headers["Authorization"] = f"Bearer {self.endpoint.api_key}"
        if spec.messages is not None:
            body["messages"] = [_openai_message(m) for m in spec.messages]
            if spec.logprobs is not None:
                body.update(logprobs=True, top_logprobs=spec.logprobs)
            if spec.response_format is not None:
                body["response_format"] = dict(spec.response_format)
            body.update(_tool_fields(spec))
            return ProviderCall("/chat/completions", body, headers)
        body["prompt"] = list(spec.prompt_ids) if spec.prompt_ids is not None else spec.prompt
        if spec.logprobs is not None:
            body["logprobs"] = spec.logprobs
        if spec.echo:
            body["echo"] = True
        return ProviderCall("/completions", body, headers)

    def parse_answer(self, data: Any) -> GenerationOutput:
        """The first choice (its text, or the tools it called) and the usage of a (chat)
        completion."""
        choice = data["choices"][0]
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else choice.get("text")
        calls = _tool_calls(message)
        if text is None and calls:
            text = ""
        if not isinstance(text, str):
            raise ProviderRefused("the first choice has no text")
        used = data.get("usage") or {}
        return GenerationOutput(text, str(choice.get("finish_reason") or "stop"),
                                int(used.get("prompt_tokens", 0)),
                                int(used.get("completion_tokens", 0)),
                                logprobs=remote_logprobs(choice.get("logprobs")),
                                tool_calls=calls)


class AnthropicBackend(RemoteBackend):
    """``base_url`` is the API host (``https://api.anthropic.com``); calls ``/v1/messages``."""

    def build_call(self, spec: GenerationInput) -> ProviderCall:
        """System and developer messages become ``system``; a prompt is one user message."""
        body: dict[str, Any] = {"model": self.endpoint.remote_model,
                                "max_tokens": spec.max_tokens,
                                # Anthropic takes temperatures up to 1.
                                "temperature": min(spec.temperature, 1.0), "top_p": spec.top_p}
        if spec.prompt_ids is not None or spec.logprobs is not None or spec.echo:
            raise ProviderRefused("Anthropic's Messages API takes no token-id prompts, echo or "
                                  "logprobs; send text without them")
        if spec.response_format is not None:
            raise ProviderRefused("Anthropic's Messages API takes no response_format; ask for "
                                  "JSON in the prompt, or use a local or OpenAI-compatible model")
        if spec.uses_tools():
            raise ProviderRefused(f"{TOOLS_REFUSED_OPENING}Stoker does not translate OpenAI "
                                  "tools to Anthropic's; use an OpenAI-compatible model")
        if spec.stop:
            body["stop_sequences"] = list(spec.stop)
        if spec.messages is not None:
            system = [m.content for m in spec.messages if m.role in ("system", "developer")]
            if system:
                body["system"] = "\n\n".join(system)
            body["messages"] = [{"role": m.role, "content": m.content} for m in spec.messages
                                if m.role in ("user", "assistant")]
        else:
            body["messages"] = [{"role": "user", "content": spec.prompt or ""}]
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self.endpoint.api_key:
            headers["x-api-key"] = self.endpoint.api_key
        return ProviderCall("/v1/messages", body, headers)

    def parse_answer(self, data: Any) -> GenerationOutput:
        """The text blocks of a message, its stop reason and usage."""
        blocks = data["content"]
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        used = data.get("usage") or {}
        finish = _ANTHROPIC_FINISH.get(str(data.get("stop_reason")), "stop")
        matched = data.get("stop_sequence")
        return GenerationOutput(text, finish, int(used.get("input_tokens", 0)),
                                int(used.get("output_tokens", 0)),
                                stop_sequence=matched if isinstance(matched, str) else None)
