"""Running a command job on this runner's accelerator (see :mod:`stoker.core.commands`).

The command runs in a session of its own, with the runner's allow-listed environment (never
its token or a provider key), the job's variables, and the checkpoint contract:
``STOKER_CHECKPOINT_DIR`` (kept across runs: resume from what is there), ``STOKER_JOB_ID``,
``STOKER_ATTEMPT`` and ``STOKER_GRACE_S``. Its output is shipped to the server every
``log_interval_s``. Told to stop, its whole process group gets SIGTERM, then SIGKILL once the
grace has passed.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from stoker.child_env import child_environment
from stoker.core.commands import (
    COMMAND_ENDPOINT,
    CommandSpec,
    RunEnd,
    StopReason,
    kill_at,
    run_end,
)
from stoker.runner.client import ControlPlaneClient, LeasedWork, LeaseGone

if TYPE_CHECKING:  # reclaim imports the continuous loop, which runs commands from here
    from stoker.runner.reclaim import ReclaimInbox

log = logging.getLogger("stoker.runner")

#: The end of a run's output kept as its result (the whole log is on the server).
TAIL_CHARS = 4000
#: Characters per shipment of a log (the server takes at most 262,144 in one).
SHIP_CHARS = 128 * 1024
_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class CommandTerms:
    """How this runner runs commands, from the server's registration terms."""

    checkpoint_root: Path
    log_interval_s: float = 2.0
    max_log_bytes_per_run: int = 4 * 1024 * 1024
    max_grace_s: float = 120.0

    @classmethod
    def from_terms(cls, terms: Mapping[str, Any]) -> CommandTerms:
        """The ``commands`` part of the registration reply."""
        return cls(Path(str(terms["checkpoint_root"])), float(terms["log_interval_s"]),
                   int(terms["max_log_bytes_per_run"]), float(terms["max_grace_s"]))


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended: its exit status (None: it never started), why it was stopped (None:
    it was not), the end of its output, and why it could not start."""

    exit_code: int | None
    stop: StopReason | None
    tail: str
    launch_error: str | None = None


class RunLog:
    """A run's output as it is read: what is not yet shipped, and the tail."""

    def __init__(self, max_bytes: int) -> None:
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._tail = ""
        self._room = max_bytes
        self._truncated = False

    def read_from(self, stream: IO[bytes]) -> None:
        """Read ``stream`` to its end (in a thread of its own)."""
        for raw in iter(lambda: stream.read1(65_536), b""):  # type: ignore[attr-defined]
            self.add(raw.decode("utf-8", errors="replace"))

    def add(self, text: str) -> None:
        """Take the next piece of output."""
        with self._lock:
            self._tail = (self._tail + text)[-TAIL_CHARS:]
            size = len(text.encode("utf-8"))
            if size <= self._room:
                self._pending.append(text)
                self._room -= size
            elif not self._truncated:
                self._truncated = True
                self._pending.append("\n[stoker: the log of this run passed its limit "
                                     "(commands.max_log_bytes_per_run); the rest is dropped]\n")

    def take(self) -> str:
        """What was read since the last take."""
        with self._lock:
            text, self._pending = "".join(self._pending), []
        return text

    @property
    def tail(self) -> str:
        """The last ``TAIL_CHARS`` characters of output."""
        with self._lock:
            return self._tail


def command_environment(spec: CommandSpec, *, job_id: str, attempt: int, checkpoint_dir: Path,
                        grace_s: float, parent: Mapping[str, str] | None = None
                        ) -> dict[str, str]:
    """The command's environment: the runner's allow-listed variables (no secret of the
    runner's), the job's own, and the checkpoint contract."""
    env = child_environment(os.environ if parent is None else parent)
    env.update(spec.env)
    env.update({"STOKER_CHECKPOINT_DIR": str(checkpoint_dir), "STOKER_JOB_ID": job_id,
                "STOKER_ATTEMPT": str(attempt), "STOKER_GRACE_S": f"{grace_s:g}",
                "PYTHONUNBUFFERED": "1"})
    return env


def _die_with_runner() -> None:
    """In the child before exec: be killed if the runner dies (Linux), so that a runner that
    crashes leaves no command running on without a lease."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def run_command(spec: CommandSpec, *, job_id: str, attempt: int, terms: CommandTerms,
                should_stop: Callable[[], StopReason | None], ship: Callable[[str], bool],
                clock: Callable[[], float] = time.monotonic) -> RunOutcome:
    """Run the command to its end; ``should_stop`` is asked every tenth of a second, and
    ``ship`` is given the output every ``log_interval_s`` (False back: the lease is gone)."""
    checkpoint_dir = terms.checkpoint_root / job_id
    checkpoint_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    grace_s = min(spec.grace_s, terms.max_grace_s)
    env = command_environment(spec, job_id=job_id, attempt=attempt,
                              checkpoint_dir=checkpoint_dir, grace_s=grace_s)
    workdir = tempfile.mkdtemp(prefix="stoker-command-")
    try:
        try:
            proc = subprocess.Popen(
                list(spec.argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True,
                preexec_fn=_die_with_runner if sys.platform == "linux" else None)
        except OSError as exc:
            return RunOutcome(None, None, "", f"could not start {spec.argv[0]!r}: "
                                              f"{exc.strerror or exc}")
        return _supervise(proc, spec, terms, grace_s, should_stop, ship, clock)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _supervise(proc: subprocess.Popen[bytes], spec: CommandSpec, terms: CommandTerms,
               grace_s: float, should_stop: Callable[[], StopReason | None],
               ship: Callable[[str], bool], clock: Callable[[], float]) -> RunOutcome:
    output = RunLog(terms.max_log_bytes_per_run)
    assert proc.stdout is not None
    reader = threading.Thread(target=output.read_from, args=(proc.stdout,), daemon=True)
    reader.start()
    started = clock()
    next_ship = started + terms.log_interval_s
    stop: StopReason | None = None
    deadline = float("inf")
    while proc.poll() is None:
        now = clock()
        if stop is None:
            stop = should_stop()
            if stop is None and spec.max_run_s is not None and now - started > spec.max_run_s:
                stop = StopReason.TIMED_OUT
            if stop is not None:
                log.info("stopping command (%s): SIGTERM, SIGKILL in %.0fs", stop, grace_s)
                _signal_group(proc, signal.SIGTERM)
                deadline = kill_at(now, grace_s)
        elif now >= deadline:
            log.warning("command still running %.0fs after SIGTERM: SIGKILL", grace_s)
            _signal_group(proc, signal.SIGKILL)
            deadline = float("inf")
        if now >= next_ship:
            if not ship(output.take()) and stop is None:
                stop = StopReason.LEASE_LOST  # signalled on the next pass
            next_ship = now + terms.log_interval_s
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_POLL_S)
    _signal_group(proc, signal.SIGKILL)  # what it left behind in its session goes too
    reader.join(timeout=5)
    ship(output.take())
    return RunOutcome(proc.returncode, stop, output.tail)


def outcome_report(request_id: str, outcome: RunOutcome
                   ) -> tuple[RunEnd, list[dict[str, Any]], list[str]]:
    """What to tell the server about a run: its end, the results and the returned ids."""
    if outcome.launch_error is not None:
        return RunEnd.FAILED, [{"request_id": request_id, "error": outcome.launch_error,
                                "retryable": False}], []
    end = run_end(outcome.exit_code, outcome.stop)
    if end is RunEnd.SUCCEEDED:
        return end, [{"request_id": request_id, "text": outcome.tail,
                      "finish_reason": "exited"}], []
    if end is RunEnd.RETURNED:
        return end, [], [request_id]
    if end is RunEnd.STOPPED:
        return end, [{"request_id": request_id, "retryable": False,
                      "error": "its job was cancelled while the command ran; it was stopped"}], []
    if end in (RunEnd.FAILED, RunEnd.RETRY):
        why = ("it ran past its max_run_s" if outcome.stop is StopReason.TIMED_OUT
               else f"the command exited with status {outcome.exit_code}")
        return end, [{"request_id": request_id, "error": why,
                      "retryable": end is RunEnd.RETRY}], []
    return end, [], []


class StopOrders:
    """What the heartbeat heard that stops a running command: lost leases and cancelled
    requests (set by the heartbeat thread, read by the run)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lost: set[str] = set()
        self._cancelled: set[str] = set()

    def receive(self, reply: Mapping[str, Any]) -> None:
        """Keep what a heartbeat's reply says."""
        with self._lock:
            self._lost.update(str(x) for x in reply.get("lost_lease_ids") or [])
            self._cancelled.update(str(x) for x in reply.get("cancelled") or [])

    def lost(self, lease_id: str) -> bool:
        """Whether the server said the lease is gone."""
        with self._lock:
            return lease_id in self._lost

    def cancelled(self, request_id: str) -> bool:
        """Whether the request's job was cancelled."""
        with self._lock:
            return request_id in self._cancelled


class CommandWork:
    """Runs the command jobs this runner is lent for, and reports each run."""

    def __init__(self, client: ControlPlaneClient, terms: CommandTerms, *,
                 reclaim: ReclaimInbox, stops: StopOrders, drain: threading.Event) -> None:
        self._client = client
        self.terms = terms
        self._reclaim = reclaim
        self._stops = stops
        self._drain = drain

    def run(self, work: LeasedWork) -> None:
        """Run the command a lease holds (one) and report how it ended."""
        (request,) = work.requests
        rid = str(request["id"])
        started = time.time()
        try:
            spec = CommandSpec.from_body(request["body"])
        except (ValueError, TypeError) as exc:
            outcome = RunOutcome(None, None, "", f"not a command: {exc}")
        else:
            log.info("running command job %s (attempt %s)", request["job_id"],
                     request.get("attempt"))
            outcome = run_command(spec, job_id=str(request["job_id"]),
                                  attempt=int(request.get("attempt") or 1), terms=self.terms,
                                  should_stop=lambda: self._why_stop(work.lease_id, rid),
                                  ship=lambda text: self._ship(rid, text))
        ended = time.time()
        end, results, returned = outcome_report(rid, outcome)
        log.info("command job %s: %s", request["job_id"], end)
        if end is RunEnd.UNREPORTED:
            return
        try:
            self._client.complete(work.lease_id, started, ended, results, returned=returned)
        except LeaseGone as exc:
            log.warning("lease %s lost before reporting: %s", work.lease_id, exc)

    def _why_stop(self, lease_id: str, request_id: str) -> StopReason | None:
        if self._stops.lost(lease_id):
            return StopReason.LEASE_LOST
        if self._stops.cancelled(request_id):
            return StopReason.CANCELLED
        if request_id in self._reclaim.named():
            return StopReason.RECLAIMED
        if self._drain.is_set():
            return StopReason.DRAINING
        return None

    def _ship(self, request_id: str, text: str) -> bool:
        for start in range(0, len(text), SHIP_CHARS):
            try:
                self._client.ship_log(request_id, text[start:start + SHIP_CHARS])
            except LeaseGone:
                return False
            except Exception as exc:  # the log is best effort; the run goes on
                log.warning("could not ship a command's log: %s", exc)
        return True


def is_command_work(work: LeasedWork) -> bool:
    """Whether a lease holds a command job (a command is always leased alone)."""
    return len(work.requests) == 1 and work.requests[0].get("endpoint") == COMMAND_ENDPOINT
