"""A runner's continuous batching: rows join one running decode loop as others finish.

Four threads share the work, so that no forward pass waits on a round trip to the server:

- the **decode** thread (the caller's) admits leased rows between steps, runs the steps and
  hands finished rows over as reports;
- a **fill** thread asks the server for the free slots (:func:`stoker.core.continuous.plan_fill`);
- a **headroom** thread asks for online work past ``max_batch_size``
  (:func:`stoker.core.continuous.plan_headroom`), so an online request never waits for a slot;
- a **reporter** thread sends each finished row's result as soon as it is done, and the text
  of streamed rows while they decode, at most every ``progress_interval_s``.

Each top-up is a lease of its own; a lease ends on the server when its last row is reported.
The loop's time is cut into consecutive intervals, one per report, so every second of it is
billed once, to the rows that finished in it (by tokens).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stoker.core.continuous import LoopConfig, TopUp, plan_fill, plan_headroom
from stoker.runner.backends.protocol import ContinuousBackend, DecodeLoop, GenerationOutput
from stoker.runner.backends.stop_sequences import streamable_text
from stoker.runner.client import ControlPlaneClient, LeasedWork, LeaseGone
from stoker.runner.command import CommandWork, is_command_work
from stoker.runner.inputs import UnrunnableRequest, generation_input

if TYPE_CHECKING:  # reclaim.py imports this module's result_json
    from stoker.runner.reclaim import ReclaimInbox

log = logging.getLogger("stoker.runner")

#: Marks that streamed text is waiting to be sent.
_PROGRESS = "progress"
_STOP = "stop"


@dataclass(frozen=True, slots=True)
class Report:
    """Rows of one lease that finished in ``started_at..ended_at`` of the loop's time.
    ``final``: the loop failed; the lease ends with these (retryable) results."""

    lease_id: str
    started_at: float
    ended_at: float
    results: list[dict[str, Any]]
    report_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    final: bool = False
    #: How many rows the loop decoded together in that time, on average.
    rows: int | None = None
    #: Rows dropped unfinished when the runner was reclaimed for online work.
    returned: list[str] = field(default_factory=list)


def result_json(request_id: str, out: GenerationOutput) -> dict[str, Any]:
    """A finished row as the server takes it."""
    return {"request_id": request_id, "text": out.text, "finish_reason": out.finish_reason,
            "prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens,
            "error": out.error, "retryable": out.error is not None and out.retryable,
            "stop_sequence": out.stop_sequence,
            "logprobs": None if out.logprobs is None else [
                [e.token, e.logprob, [list(t) for t in e.top]] for e in out.logprobs],
            "tool_calls": None if out.tool_calls is None else [dict(c) for c in out.tool_calls]}


def split_interval(started_at: float, ended_at: float, weights: list[float]
                   ) -> list[tuple[float, float]]:
    """``started_at..ended_at`` cut into consecutive pieces in proportion to ``weights``
    (equal pieces when all weigh 0): together they cover it exactly once."""
    total = sum(weights)
    shares = [w / total for w in weights] if total > 0 else [1 / len(weights)] * len(weights)
    pieces, start = [], started_at
    for i, share in enumerate(shares):
        end = ended_at if i == len(shares) - 1 else start + (ended_at - started_at) * share
        pieces.append((start, end))
        start = end
    return pieces


@dataclass
class _Row:
    lease_id: str
    streamed: bool
    stops: tuple[str, ...] = ()
    sent_text: str = ""


class ContinuousWork:
    """Runs leased requests through one decode loop until drained."""

    def __init__(self, client: ControlPlaneClient, backend: ContinuousBackend,
                 config: LoopConfig, drain: threading.Event, *, long_poll_s: float,
                 progress_interval_s: float = 0.05,
                 clock: Callable[[], float] = time.time,
                 commands: CommandWork | None = None,
                 reclaim: ReclaimInbox | None = None) -> None:
        self._client = client
        self._backend = backend
        self._config = config
        self._drain = drain
        self._long_poll_s = long_poll_s
        self._progress_interval_s = progress_interval_s
        self._clock = clock
        self._changed = threading.Condition()
        self._mailbox: list[tuple[dict[str, Any], str]] = []
        self._rows_in_hand = 0  # granted and not yet finished: the asks' view of the loop
        self._unreported: dict[str, int] = {}  # lease → rows whose result is not yet sent
        self._outbox: queue.Queue[Report | str] = queue.Queue()
        self._streamed: dict[str, str] = {}
        self._progress_due = 0.0
        self._failure: BaseException | None = None
        # A command job, run by the fill thread while the loop is empty (never beside rows
        # the fill asked for: the accelerator is lent to it).
        self._commands = commands
        self._command_leases: set[str] = set()
        # The heartbeat's reclaim orders: rows below the online tier leave the loop, unanswered
        # and handed back, once their grace has passed.
        self._reclaim = reclaim

    def open_leases(self) -> list[str]:
        """The leases with rows not yet reported (the heartbeat renews them)."""
        with self._changed:
            return list(self._unreported) + list(self._command_leases)

    def run(self) -> None:
        """Decode until drained and everything leased is reported; re-raises what stopped
        an asking thread (the server stopped this runner)."""
        askers = [threading.Thread(target=self._ask_loop, args=(plan,), name=name, daemon=True)
                  for name, plan in (("fill", plan_fill), ("headroom", plan_headroom))]
        reporter = threading.Thread(target=self._report_loop, name="reporter", daemon=True)
        reporter.start()
        for t in askers:
            t.start()
        try:
            self._decode(self._backend.open_loop(), askers)
        finally:
            self._drain.set()
            # A running command is given its grace to stop before the askers are left.
            grace = self._commands.terms.max_grace_s if self._commands is not None else 0.0
            for t in askers:
                t.join(timeout=self._long_poll_s + 35 + grace)
            self._outbox.put(_STOP)
            reporter.join(timeout=60)
        if self._failure is not None:
            raise self._failure

    # -- asking for work -------------------------------------------------------------------

    def _ask_loop(self, plan: Callable[[int, LoopConfig], TopUp | None]) -> None:
        while not self._drain.is_set():
            with self._changed:
                ask = plan(self._rows_in_hand, self._config)
                if ask is None:
                    self._changed.wait(1.0)
                    continue
            try:
                work, draining = self._client.lease(self._long_poll_s, ask)
            except Exception as exc:  # the server stopped us, or it is gone while draining
                self._failure = self._failure or exc
                self._drain.set()
                return
            if work is not None and self._commands is not None and is_command_work(work):
                self._run_command(self._commands, work)
            elif work is not None:
                self._take(work)
            if draining:
                self._drain.set()

    def _run_command(self, commands: CommandWork, work: LeasedWork) -> None:
        with self._changed:
            self._command_leases.add(work.lease_id)
        try:
            commands.run(work)
        finally:
            with self._changed:
                self._command_leases.discard(work.lease_id)

    def _take(self, work: LeasedWork) -> None:
        with self._changed:
            self._mailbox += [(req, work.lease_id) for req in work.requests]
            self._rows_in_hand += len(work.requests)
            self._unreported[work.lease_id] = len(work.requests)
            self._changed.notify_all()

    # -- decoding --------------------------------------------------------------------------

    def _decode(self, loop: DecodeLoop, askers: list[threading.Thread]) -> None:
        rows: dict[str, _Row] = {}
        cut = self._clock()
        row_seconds = 0.0  # rows in flight times seconds, since the last cut
        while True:
            with self._changed:
                while not self._mailbox and loop.in_flight == 0:
                    if self._drain.is_set() and not any(t.is_alive() for t in askers):
                        return
                    self._changed.wait(0.5)
                joining, self._mailbox = self._mailbox, []
            if loop.in_flight == 0:
                cut, row_seconds = self._clock(), 0.0  # the loop's time starts again
            finished = self._join(loop, rows, joining)
            self._hand_back(loop, rows)
            if loop.in_flight == 0 and not finished:
                continue
            in_flight, started = loop.in_flight, self._clock()
            try:
                finished += loop.step()
            except Exception as exc:
                log.exception("decode step failed; the loop's rows go back to the queue")
                self._fail_loop(rows, cut, f"backend failed: {exc}")
                loop, rows, cut, row_seconds = self._backend.open_loop(), {}, self._clock(), 0.0
                continue
            now = self._clock()
            row_seconds += in_flight * (now - started)
            if finished:
                mean_rows = max(1, round(row_seconds / (now - cut))) if now > cut else None
                self._send_finished(rows, finished, cut, now, mean_rows)
                cut, row_seconds = now, 0.0
            self._stream(loop, rows)

    def _join(self, loop: DecodeLoop, rows: dict[str, _Row],
              joining: list[tuple[dict[str, Any], str]]) -> list[tuple[str, GenerationOutput]]:
        """Add leased requests to the loop; those that cannot run are answered at once."""
        answered = []
        for req, lease_id in joining:
            rid = req["id"]
            try:
                spec = generation_input(req["endpoint"], req["body"])
            except UnrunnableRequest as exc:
                rows[rid] = _Row(lease_id, False)
                answered.append((rid, GenerationOutput("", "error", 0, 0, error=str(exc))))
                continue
            rows[rid] = _Row(lease_id, req["body"].get("stream") is True, spec.stop)
            refused = loop.join(rid, spec)
            if refused is not None:
                answered.append((rid, refused))
        return answered

    def _hand_back(self, loop: DecodeLoop, rows: dict[str, _Row]) -> None:
        """Drop the rows a due reclaim order names, and report them returned (the queue
        takes them back with the attempt not counted); the order is then spent."""
        if self._reclaim is None:
            return
        due = self._reclaim.due()
        if not due:
            return
        self._reclaim.clear()
        dropped = loop.abandon(set(due) & rows.keys())
        if not dropped:
            return
        log.info("handed %d rows back for online work", len(dropped))
        by_lease: dict[str, list[str]] = {}
        for rid in dropped:
            by_lease.setdefault(rows.pop(rid).lease_id, []).append(rid)
        now = self._clock()
        for lease_id, ids in by_lease.items():
            self._outbox.put(Report(lease_id, now, now, [], returned=ids))
        with self._changed:
            self._rows_in_hand -= len(dropped)
            self._changed.notify_all()

    def _send_finished(self, rows: dict[str, _Row],
                       finished: list[tuple[str, GenerationOutput]], cut: float,
                       now: float, mean_rows: int | None) -> None:
        by_lease: dict[str, list[tuple[str, GenerationOutput]]] = {}
        for rid, out in finished:
            by_lease.setdefault(rows.pop(rid).lease_id, []).append((rid, out))
        weights = [float(sum(o.prompt_tokens + o.completion_tokens for _, o in done))
                   for done in by_lease.values()]
        for (lease_id, done), (start, end) in zip(
                by_lease.items(), split_interval(cut, now, weights), strict=True):
            self._outbox.put(Report(lease_id, start, end,
                                    [result_json(rid, out) for rid, out in done],
                                    rows=mean_rows))
        with self._changed:
            self._rows_in_hand -= len(finished)
            self._changed.notify_all()

    def _fail_loop(self, rows: dict[str, _Row], cut: float, error: str) -> None:
        """The loop broke: each lease with rows in it ends with them as retryable failures
        (the server puts them back)."""
        by_lease: dict[str, list[dict[str, Any]]] = {}
        for rid, row in rows.items():
            by_lease.setdefault(row.lease_id, []).append(
                {"request_id": rid, "error": error, "retryable": True})
        now = self._clock()
        for lease_id, results in by_lease.items():
            self._outbox.put(Report(lease_id, cut, now, results, final=True))
        with self._changed:
            self._rows_in_hand -= len(rows)
            self._changed.notify_all()

    def _stream(self, loop: DecodeLoop, rows: dict[str, _Row]) -> None:
        """Hand the grown text of streamed rows to the reporter, at a bounded rate; a row's
        first text goes at once (what its client is waiting for)."""
        now = self._clock()
        due = now >= self._progress_due
        grown = {}
        for rid, row in rows.items():
            if not row.streamed or (row.sent_text and not due):
                continue
            text = streamable_text(loop.partial_text(rid) or "", row.stops)
            if len(text) > len(row.sent_text):
                row.sent_text = grown[rid] = text
        if grown:
            with self._changed:
                waiting = bool(self._streamed)
                self._streamed.update(grown)
            if not waiting:
                self._outbox.put(_PROGRESS)
            self._progress_due = now + self._progress_interval_s

    # -- reporting -------------------------------------------------------------------------

    def _report_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item == _STOP:
                return
            if item == _PROGRESS:
                self._send_progress()
            elif isinstance(item, Report):
                self._send_report(item)

    def _send_progress(self) -> None:
        with self._changed:
            texts, self._streamed = self._streamed, {}
        try:
            self._client.progress(texts)
        except Exception as exc:  # the final result carries the whole text anyway
            log.warning("could not send streamed text: %s", exc)

    def _send_report(self, report: Report) -> None:
        try:
            if report.final:
                self._client.complete(report.lease_id, report.started_at, report.ended_at,
                                      report.results)
            else:
                self._client.report(report.lease_id, report.report_id, report.started_at,
                                    report.ended_at, report.results, rows=report.rows,
                                    returned=report.returned)
        except LeaseGone as exc:
            log.warning("lease %s lost before reporting: %s", report.lease_id, exc)
        except Exception as exc:
            log.error("could not report lease %s: %s", report.lease_id, exc)
        with self._changed:
            left = (self._unreported.get(report.lease_id, 0) - len(report.results)
                    - len(report.returned))
            if left > 0 and not report.final:
                self._unreported[report.lease_id] = left
            else:
                self._unreported.pop(report.lease_id, None)
