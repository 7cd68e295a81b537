"""Waiting for an online request's answer, and following its text while it is generated."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from stoker.api.services import Services
from stoker.api.streams import StreamWatch
from stoker.core.model import JOB_TERMINAL, REQUEST_TERMINAL, RequestStatus
from stoker.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ModelFailed,
    Timeout,
    Unprocessable,
)
from stoker.openai_format import CHAT_COMPLETIONS, CONTEXT_LENGTH_OPENING
from stoker.openai_tools import TOOLS_REFUSED_OPENING
from stoker.store import ResultRow

# How often a waiting call looks whether its client has gone away.
_DISCONNECT_CHECK_S = 1.0


async def follow(request: Request, svc: Services, job_id: str,
                 watch: StreamWatch | None = None, *, wakes: bool = False
                 ) -> AsyncIterator[str]:
    """Wait until the one request of ``job_id`` ends, yielding its text so far each time
    ``watch`` sees it grow (and "" each time some job may have moved, with ``wakes``).
    Cancels the job (and raises Timeout) if the client leaves or the online timeout passes."""
    deadline = svc.clock.now() + svc.settings.limits.online_timeout_s
    checked_at = float("-inf")
    while True:
        now = svc.clock.now()
        grown = watch is not None and watch.grown.is_set()
        if not grown or now - checked_at >= _DISCONNECT_CHECK_S:
            checked_at = now
            job = await run_in_threadpool(svc.store.get_job, job_id)
            if job.status in JOB_TERMINAL:
                return
            if deadline - now <= 0 or await request.is_disconnected():
                await run_in_threadpool(svc.store.cancel_job, job_id, now=svc.clock.now())
                raise Timeout(f"no answer within {svc.settings.limits.online_timeout_s:g}s; "
                              "the request was cancelled. The pool may be saturated: try "
                              "again later")
        if watch is not None and watch.grown.is_set():
            watch.grown.clear()
            yield watch.text
            continue
        await _news(svc, watch, max(0.0, min(deadline - now, _DISCONNECT_CHECK_S)))
        if wakes:
            yield ""


async def _news(svc: Services, watch: StreamWatch | None, timeout_s: float) -> None:
    """Wait until some job may have moved or the watched text grew, or ``timeout_s``."""
    if watch is None:
        await svc.dispatcher.wait_progress(timeout_s)
        return
    grown = asyncio.ensure_future(watch.grown.wait())
    moved = asyncio.ensure_future(svc.dispatcher.wait_progress(timeout_s))
    _, pending = await asyncio.wait({grown, moved}, timeout=timeout_s,
                                    return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def final_row(svc: Services, job_id: str) -> ResultRow:
    """The ended request's result; its failure as the error a client should see."""
    (row,) = await run_in_threadpool(svc.store.job_results, job_id)
    return succeeded(row)


def succeeded(row: ResultRow) -> ResultRow:
    """An ended request's result, or its failure as the error a client should see."""
    if row.status == RequestStatus.SUCCEEDED:
        return row
    if row.status == RequestStatus.FAILED and row.finish_reason == "error":
        if (row.error or "").startswith(CONTEXT_LENGTH_OPENING):
            raise ContextLengthExceeded(row.error or "", param=_input_field(row.endpoint))
        if (row.error or "").startswith(TOOLS_REFUSED_OPENING):
            raise InvalidRequest(row.error or "", param="tools")
        raise Unprocessable(row.error or "the model cannot take this request")
    raise ModelFailed(f"the model failed this request after {row.attempts} attempts: "
                      f"{row.error or 'no answer'}")


def _input_field(endpoint: str) -> str:
    return "messages" if endpoint == CHAT_COMPLETIONS else "prompt"


async def answer(request: Request, svc: Services, job_id: str) -> ResultRow:
    """Wait for the one request of ``job_id``; cancel it if the client leaves or time runs out."""
    async for _ in follow(request, svc, job_id):
        pass
    return await final_row(svc, job_id)


async def answer_all(request: Request, svc: Services, job_id: str) -> list[ResultRow]:
    """Wait for every request of ``job_id`` (several prompts of one call), in order; the
    first failure as the error a client should see."""
    async for _ in follow(request, svc, job_id):
        pass
    rows = await run_in_threadpool(svc.store.job_results, job_id)
    return [succeeded(row) for row in rows]


async def rows_as_they_end(request: Request, svc: Services,
                           job_id: str) -> AsyncIterator[ResultRow]:
    """Each request of ``job_id`` once it has ended, as soon as it has (several prompts of
    one streamed call); a failure as the error a client should see (see :func:`follow` for
    a client that leaves)."""
    sent: set[str] = set()

    async def newly_ended() -> list[ResultRow]:
        rows = await run_in_threadpool(svc.store.job_results, job_id)
        ended = [r for r in rows
                 if r.status in REQUEST_TERMINAL and r.request_id not in sent]
        sent.update(r.request_id for r in ended)
        return [succeeded(r) for r in ended]

    async for _ in follow(request, svc, job_id, wakes=True):
        for row in await newly_ended():
            yield row
    for row in await newly_ended():
        yield row


async def request_id_of(svc: Services, job_id: str) -> str:
    """The id of an online job's one request (what runners stream under)."""
    (row,) = await run_in_threadpool(svc.store.job_results, job_id)
    return row.request_id


class StreamedAnswer:
    """An online request's text as pieces to send, then its result (``row``)."""

    def __init__(self, request: Request, svc: Services, job_id: str, request_id: str) -> None:
        self._request, self._svc, self._job_id, self._request_id = (request, svc, job_id,
                                                                     request_id)
        self.row: ResultRow | None = None

    async def pieces(self) -> AsyncIterator[str]:
        """Each piece of text that continues what was sent, as the runner generates it, then
        what the final result adds; ``row`` is set before the last piece. Raises the error a
        client should see (Timeout, a failed request)."""
        sent = ""
        with self._svc.streams.watch(self._request_id) as watch:
            async for text in follow(self._request, self._svc, self._job_id, watch):
                piece = new_text(sent, text)
                if piece:
                    sent += piece
                    yield piece
        self.row = await final_row(self._svc, self._job_id)
        rest = new_text(sent, self.row.text or "")
        if rest:
            yield rest


def new_text(sent: str, text: str) -> str:
    """What ``text`` adds to the ``sent`` part of it ("" if it adds nothing, or if it does
    not continue what was sent, which cannot be taken back)."""
    return text[len(sent):] if text.startswith(sent) else ""
