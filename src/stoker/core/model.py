"""The domain's plain data: statuses, requests, jobs, runners, leases and batch records.

Times are seconds since the epoch as floats, always passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from stoker.core.windows import DispatchWindow


class RequestStatus(StrEnum):
    """Where one request stands.

    - ``queued``: waiting for a runner (new, or put back after a lease expired).
    - ``leased``: handed to a runner under a lease that the runner renews by heartbeat.
    - ``succeeded``: a result was recorded (terminal).
    - ``failed``: it could not be answered, or ran out of attempts; the error is kept (terminal).
    - ``cancelled``: its job was cancelled before it ran (terminal).
    """

    QUEUED = "queued"
    LEASED = "leased"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


REQUEST_TERMINAL: frozenset[RequestStatus] = frozenset(
    {RequestStatus.SUCCEEDED, RequestStatus.FAILED, RequestStatus.CANCELLED}
)


class JobStatus(StrEnum):
    """Where a job stands, derived from its requests.

    - ``queued``: no request has been leased yet.
    - ``running``: some request was leased or finished, and some are still open.
    - ``completed``: every request finished (succeeded or failed) (terminal).
    - ``cancelling``: cancelled by its owner; requests already running are finishing.
    - ``cancelled``: cancelled, and nothing of it is running any more; results recorded before
      that are kept (terminal).
    """

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"


JOB_TERMINAL: frozenset[JobStatus] = frozenset({JobStatus.COMPLETED, JobStatus.CANCELLED})


class RunnerState(StrEnum):
    """What a runner is doing; every transition is recorded as a timed interval.

    - ``starting``: registered, provisioning and loading its model.
    - ``idle``: model loaded, waiting for work.
    - ``busy``: running a batch.
    - ``draining``: finishing the batch in hand and taking no new work.
    - ``lent``: an online replica lent to work that can wait.
    - ``stopped``: gone, cleanly or lost (no heartbeat) (terminal).
    """

    STARTING = "starting"
    IDLE = "idle"
    BUSY = "busy"
    DRAINING = "draining"
    LENT = "lent"
    STOPPED = "stopped"


RUNNER_TERMINAL: frozenset[RunnerState] = frozenset({RunnerState.STOPPED})

_RUNNER_TRANSITIONS: dict[RunnerState, frozenset[RunnerState]] = {
    RunnerState.STARTING: frozenset({RunnerState.IDLE, RunnerState.DRAINING, RunnerState.STOPPED}),
    RunnerState.IDLE: frozenset(
        {RunnerState.BUSY, RunnerState.DRAINING, RunnerState.LENT, RunnerState.STOPPED}
    ),
    RunnerState.BUSY: frozenset({RunnerState.IDLE, RunnerState.DRAINING, RunnerState.STOPPED}),
    RunnerState.DRAINING: frozenset({RunnerState.STOPPED}),
    RunnerState.LENT: frozenset({RunnerState.IDLE, RunnerState.DRAINING, RunnerState.STOPPED}),
    RunnerState.STOPPED: frozenset(),
}


def runner_transition_allowed(current: RunnerState, target: RunnerState) -> bool:
    """Whether a runner may move from ``current`` to ``target`` (staying put is always allowed)."""
    return current == target or target in _RUNNER_TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class Tier:
    """A named class of work; a higher ``priority`` is dispatched first.

    A tier with a ``window`` is accepted any time but dispatched only inside it, or also
    outside it when nothing else could use the pool, if ``run_outside_window_when_idle``.
    """

    name: str
    priority: int
    max_prompts: int | None = None
    preemptible: bool = False
    window: DispatchWindow | None = None
    run_outside_window_when_idle: bool = False
    #: The pool is sized so that this tier's queued work (and all above it) is done within
    #: this many seconds (the autoscaler's target).
    drain_target_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Team:
    """Who submits work, and its weight in fair sharing within a tier."""

    name: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class QueueGroup:
    """One team's queued requests for one model in one tier."""

    tier: str
    team: str
    queued: int
    head_enqueued_at: float


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt to one completion: the unit that is scheduled, batched, retried and billed."""

    id: str
    job_id: str
    index: int
    custom_id: str
    model: str
    tier: str
    endpoint: str
    body: dict[str, object]
    status: RequestStatus
    attempts: int
    max_attempts: int
    enqueued_at: float
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class RequestCounts:
    """How many of a job's requests are in each state."""

    total: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        """Requests in a terminal state."""
        return self.succeeded + self.failed + self.cancelled


@dataclass(frozen=True, slots=True)
class Job:
    """A set of requests from one team, for one model, in one tier."""

    id: str
    team: str
    tier: str
    model: str
    status: JobStatus
    created_at: float
    counts: RequestCounts
    finished_at: float | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    concurrency_group: str | None = None
    superseded_by: str | None = None
    #: When the job was cancelled (None: it was not).
    cancelled_at: float | None = None
    #: Its deadline: what has not run by then is cancelled (None: it has none).
    expires_at: float | None = None

    @property
    def expired(self) -> bool:
        """Whether the job was cancelled by its deadline (or at it, whoever asked)."""
        return (self.expires_at is not None and self.cancelled_at is not None
                and self.cancelled_at >= self.expires_at)


def job_status(counts: RequestCounts, *, cancelled: bool) -> JobStatus:
    """Derive a job's status from its request counts."""
    if cancelled:
        return JobStatus.CANCELLING if counts.running else JobStatus.CANCELLED
    if counts.total > 0 and counts.finished == counts.total:
        return JobStatus.COMPLETED
    if counts.running or counts.finished:
        return JobStatus.RUNNING
    return JobStatus.QUEUED


@dataclass(frozen=True, slots=True)
class Runner:
    """One process keeping one model loaded on one accelerator."""

    id: str
    name: str
    model: str
    state: RunnerState
    pid: int | None
    host: str
    max_batch_size: int
    max_wait_ms: int
    registered_at: float
    last_heartbeat_at: float
    state_since: float
    leased_requests: int = 0
    #: The checkpoint revision it loaded (None: the configured one, before any roll).
    revision: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """A runner's claim on a batch of requests until ``expires_at``, renewed by heartbeat."""

    id: str
    runner_id: str
    model: str
    created_at: float
    expires_at: float
    request_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """One pass a runner made over a batch: what cost accounting is derived from."""

    id: str
    runner_id: str
    model: str
    lease_id: str
    started_at: float
    ended_at: float
    request_ids: tuple[str, ...]
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class RunnerInterval:
    """A runner spent ``[started_at, ended_at)`` in ``state``; ``ended_at`` is None while open."""

    runner_id: str
    state: RunnerState
    started_at: float
    ended_at: float | None
