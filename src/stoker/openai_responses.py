"""The response bodies Stoker writes in OpenAI's shapes: a (chat) completion with one choice
per prompt, and its choices' log-probabilities in the shape of each endpoint."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stoker.openai_format import CHAT_COMPLETIONS, usage


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer of a response: its text, why it ended and, when asked, its tokens'
    log-probabilities ([token, logprob, [[alternative, logprob], ...]] per token)."""

    text: str
    finish_reason: str
    logprobs: list[Any] | None = None
    #: The tools the model called (OpenAI's ``tool_calls`` objects), when it called any.
    tool_calls: list[Any] | None = None


def completion_response_body(*, endpoint: str, request_id: str, model: str, created: int,
                             choices: Sequence[Choice], prompt_tokens: int,
                             completion_tokens: int) -> dict[str, Any]:
    """A ``chat.completion`` or ``text_completion`` body, as OpenAI shapes them."""
    chat = endpoint == CHAT_COMPLETIONS
    shaped = [_chat_choice(i, c) if chat else _text_choice(i, c) for i, c in enumerate(choices)]
    kind, prefix = ("chat.completion", "chatcmpl") if chat else ("text_completion", "cmpl")
    return {"id": f"{prefix}-{request_id}", "object": kind, "created": created,
            "model": model, "choices": shaped,
            "usage": usage(prompt_tokens, completion_tokens)}


def _chat_choice(index: int, choice: Choice) -> dict[str, Any]:
    return {"index": index, "message": chat_message(choice),
            "finish_reason": choice.finish_reason,
            "logprobs": None if choice.logprobs is None else chat_logprobs(choice.logprobs)}


def chat_message(choice: Choice) -> dict[str, Any]:
    """The assistant message of a chat choice: its text, or the tools it called (content is
    then null when there is no text, as OpenAI answers)."""
    if not choice.tool_calls:
        return {"role": "assistant", "content": choice.text}
    return {"role": "assistant", "content": choice.text or None,
            "tool_calls": choice.tool_calls}


def _text_choice(index: int, choice: Choice) -> dict[str, Any]:
    return {"index": index, "text": choice.text, "finish_reason": choice.finish_reason,
            "logprobs": None if choice.logprobs is None
            else completion_logprobs(choice.logprobs)}


def chat_logprobs(entries: list[Any]) -> dict[str, Any]:
    """Chat's ``logprobs``: ``content``, a list of ``{token, logprob, bytes, top_logprobs}``."""
    def one(token: str, logprob: float) -> dict[str, Any]:
        return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}

    return {"content": [{**one(token, logprob),
                         "top_logprobs": [one(t, lp) for t, lp in top]}
                        for token, logprob, top in entries],
            "refusal": None}


def completion_logprobs(entries: list[Any]) -> dict[str, Any]:
    """Completions' ``logprobs``: parallel ``tokens``, ``token_logprobs``, ``top_logprobs``
    (a token-to-logprob map per position; None where nothing predicts the token, as for an
    echoed prompt's first) and ``text_offset`` (each token's start in the choice's text)."""
    offsets, at = [], 0
    for token, _, _ in entries:
        offsets.append(at)
        at += len(token)
    return {"tokens": [token for token, _, _ in entries],
            "token_logprobs": [logprob for _, logprob, _ in entries],
            "top_logprobs": [None if logprob is None else dict(top)
                             for _, logprob, top in entries],
            "text_offset": offsets}
