"""Streamed answers of ``/v1/chat/completions`` and ``/v1/completions`` as server-sent events,
chunked as OpenAI chunks them: the role chunk at once (chat), the text as the runner generates
it, then the finish reason (and usage on request) and ``[DONE]``. A call whose choices are more
than text (several prompts, log-probabilities, an echoed prompt) gets each choice whole, as
soon as its request has ended.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from stoker.api.errors import error_type
from stoker.api.online_answer import StreamedAnswer, request_id_of, rows_as_they_end
from stoker.api.services import Services
from stoker.errors import StokerError
from stoker.openai_format import CHAT_COMPLETIONS, usage
from stoker.openai_responses import chat_logprobs, completion_logprobs
from stoker.store import ResultRow


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def _error_event(exc: StokerError) -> str:
    # The status line is sent already: the error travels as an event, as OpenAI does.
    return _sse({"error": {"message": exc.message, "type": error_type(exc.status_code),
                           "code": exc.code, "param": exc.param}})


class AnswerStream:
    """The events of one streamed call, as OpenAI shapes its chunks."""

    def __init__(self, request: Request, svc: Services, job_id: str, endpoint: str,
                 model: str, include_usage: bool) -> None:
        self._request, self._svc, self._job_id = request, svc, job_id
        self._include_usage = include_usage
        self.chat = endpoint == CHAT_COMPLETIONS
        self._head = {"id": f"{'chatcmpl' if self.chat else 'cmpl'}-{job_id}",
                      "object": "chat.completion.chunk" if self.chat else "text_completion",
                      "created": int(svc.clock.now()), "model": model}

    async def text_as_generated(self) -> AsyncIterator[str]:
        """One request's text as the runner generates it, then its tool calls (if the model
        made any), the finish reason, usage on request and ``[DONE]``."""
        if self.chat:
            yield _sse(self._chunk({"delta": {"role": "assistant", "content": ""}}))
        streamed = StreamedAnswer(self._request, self._svc, self._job_id,
                                  await request_id_of(self._svc, self._job_id))
        try:
            async for piece in streamed.pieces():
                yield _sse(self._chunk(self._text(piece)))
        except StokerError as exc:
            yield _error_event(exc)
            return
        row = streamed.row
        assert row is not None  # set once the pieces end
        if row.tool_calls and self.chat:
            yield _sse(self._chunk({"delta": {"tool_calls": _indexed(row.tool_calls)}}))
        yield _sse(self._chunk({**self._text(""), "finish_reason": row.finish_reason or "stop"}))
        for event in self._closing([row]):
            yield event

    async def whole_choices(self) -> AsyncIterator[str]:
        """Each request's choice whole (text, log-probabilities, finish reason) as soon as it
        has ended, in the order they end (``index`` says whose), then usage and ``[DONE]``."""
        if self.chat:
            yield _sse(self._chunk({"delta": {"role": "assistant", "content": ""}}))
        rows: list[ResultRow] = []
        try:
            async for row in rows_as_they_end(self._request, self._svc, self._job_id):
                rows.append(row)
                yield _sse(self._chunk(self._whole(row), index=row.index))
        except StokerError as exc:
            yield _error_event(exc)
            return
        for event in self._closing(rows):
            yield event

    def _closing(self, rows: list[ResultRow]) -> list[str]:
        events = []
        if self._include_usage:
            # stream_options.include_usage: one last chunk with no choices and the counts.
            events.append(_sse({**self._head, "choices": [], "usage": usage(
                sum(r.prompt_tokens for r in rows), sum(r.completion_tokens for r in rows))}))
        return [*events, _sse("[DONE]")]

    def _chunk(self, choice: dict[str, Any], *, index: int = 0) -> dict[str, Any]:
        return {**self._head,
                "choices": [{"index": index, "finish_reason": None, "logprobs": None,
                             **choice}]}

    def _text(self, text: str) -> dict[str, Any]:
        return {"delta": {"content": text} if text else {}} if self.chat else {"text": text}

    def _whole(self, row: ResultRow) -> dict[str, Any]:
        choice = {**self._text(row.text or ""), "finish_reason": row.finish_reason or "stop"}
        if row.tool_calls and self.chat:
            choice["delta"] = {**choice["delta"], "tool_calls": _indexed(row.tool_calls)}
        if row.logprobs is not None:
            choice["logprobs"] = (chat_logprobs(row.logprobs) if self.chat
                                  else completion_logprobs(row.logprobs))
        return choice


def _indexed(tool_calls: list[Any]) -> list[dict[str, Any]]:
    """Tool calls as a stream's delta carries them: each with its ``index``."""
    return [{"index": i, **call} for i, call in enumerate(tool_calls)]
