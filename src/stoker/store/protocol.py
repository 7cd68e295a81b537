"""The store interface and the plain data that crosses it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from stoker.core.accounting import RunnerClass, UsageRecords
from stoker.core.admission import AdmissionDecision, AdmissionState, TeamLoad
from stoker.core.batching import Pick
from stoker.core.model import (
    BatchRecord,
    Job,
    Lease,
    QueueGroup,
    Request,
    RequestStatus,
    Runner,
    RunnerInterval,
    RunnerState,
)
from stoker.store.protocol_callbacks import CallbackStore
from stoker.store.protocol_commands import CommandStore
from stoker.store.protocol_openai import NewBatch, OpenAIStore
from stoker.store.protocol_pool import PoolStore


@dataclass(frozen=True, slots=True)
class NewRequest:
    """One request of a job being submitted."""

    custom_id: str
    endpoint: str
    body: dict[str, object]
    cache_key: str | None = None


@runtime_checkable
class EncodedRequests(Protocol):
    """Requests that can give each one as ``[custom_id, endpoint, body]`` compact JSON text
    (an upload kept that way): its rows are then made without parsing a body."""

    def canonical_lines(self) -> Iterator[bytes]:
        """Each request's ``[custom_id, endpoint, body]`` as compact JSON, in order."""


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job being submitted: all of its requests are stored, or none."""

    team: str
    tier: str
    priority: int
    model: str
    requests: Sequence[NewRequest]
    max_attempts: int
    metadata: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    concurrency_group: str | None = None
    cancel_in_progress: bool = False
    use_cache: bool = True
    #: Set when the job is an OpenAI-API batch: the batch is stored in the same transaction.
    batch: NewBatch | None = None
    #: A digest of what was asked: a repeated ``idempotency_key`` with another one is refused.
    fingerprint: str | None = None
    #: Pinned to this checkpoint revision: only runners of it lease the job's requests.
    revision: str | None = None
    #: Seconds after submission past which what has not run is cancelled (None: no deadline).
    expires_after_s: float | None = None
    #: Called (POST, signed) once the job has finished; checked by the caller beforehand.
    callback_url: str | None = None
    #: The queue its requests wait in (None: its model's; command jobs wait apart, see
    #: :func:`stoker.core.commands.command_queue`).
    queue: str | None = None

    @property
    def queue_name(self) -> str:
        """The queue its requests wait in."""
        return self.queue or self.model


@dataclass(frozen=True, slots=True)
class Submission:
    """What a submit did: the job, whether it is new (not an idempotent repeat), and the
    older jobs of its concurrency group that it superseded."""

    job: Job
    created: bool
    superseded: tuple[str, ...] = ()
    batch_id: str | None = None


AdmissionCheck = Callable[[TeamLoad, AdmissionState | None],
                          tuple[AdmissionDecision, AdmissionState]]

#: Whether a grant that lends a runner may go ahead, given the model's warm runners and the
#: tiers each of its runners holds leased (read under the model's lending lock).
LendCheck = Callable[[int, Mapping[str, frozenset[str]]], bool]


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    """What a runner reports for one request of its batch.

    ``error`` set means it failed; ``retryable`` says whether another attempt may succeed.
    """

    request_id: str
    text: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    retryable: bool = False
    #: The stop string that ended the text, when one did.
    stop_sequence: str | None = None
    #: Its tokens' log-probabilities, when asked for: [token, logprob, [[token, logprob]…]]
    #: per token.
    logprobs: list[Any] | None = None
    #: The tools the model called (OpenAI's ``tool_calls`` objects), when it called any.
    tool_calls: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class CompletionSummary:
    """What a completion call changed."""

    recorded: int
    duplicates: int
    requeued: int
    failed: int
    model: str
    #: The same lease was reported before: nothing new was recorded (a retried call).
    repeated: bool = False


@dataclass(frozen=True, slots=True)
class ResultRow:
    """A request of a job with its recorded result, if any."""

    request_id: str
    index: int
    custom_id: str
    endpoint: str
    model: str
    status: RequestStatus
    attempts: int
    text: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    error: str | None
    finished_at: float | None
    cached: bool = False
    #: The stop string that ended the text, when one did.
    stop_sequence: str | None = None
    #: Its tokens' log-probabilities, when asked for (as :class:`RequestOutcome` has them).
    logprobs: list[Any] | None = None
    #: The tools the model called, when it called any (as :class:`RequestOutcome` has them).
    tool_calls: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class JobBatch:
    """A batch pass that ran some of a job's requests, next to other jobs' requests."""

    batch: BatchRecord
    job_requests: int


class Store(PoolStore, CallbackStore, CommandStore, OpenAIStore, Protocol):
    """Durable state of jobs, requests, results, runners, leases and batches.

    Every write is committed durably before the call returns.
    """

    def submit_job(self, job: NewJob, *, now: float,
                   admission: AdmissionCheck | None = None) -> Submission:
        """Store a job and all its requests atomically, or nothing.

        An ``idempotency_key`` already used by the team returns that job instead. ``admission``
        decides, inside the same transaction, whether the team may submit (its state is kept
        either way); a refusal raises RateLimited (or Unprocessable when it can never pass).
        Requests answered before (same ``cache_key``) are stored as already answered.
        Raises Conflict on a duplicate custom_id.
        """
        ...

    def get_job(self, job_id: str) -> Job:
        """A job with its counts; raises NotFound."""
        ...

    def list_jobs(self, *, limit: int, team: str | None = None) -> list[Job]:
        """Most recent jobs first, of one team or of all."""
        ...

    def team_standing(self, team: str, *, now: float
                      ) -> tuple[TeamLoad, AdmissionState | None]:
        """What admission reads for ``team`` at ``now`` (its queued requests, tokens
        generated today, admission state), read without deciding anything."""
        ...

    def job_results(self, job_id: str) -> list[ResultRow]:
        """Every request of the job in submission order, with its result if recorded."""
        ...

    def iter_job_results(self, job_id: str, *, page: int = 2000) -> Iterator[ResultRow]:
        """The same rows as :meth:`job_results`, read ``page`` at a time as they are taken,
        so that a job of a million requests streams in constant memory."""
        ...

    def job_tokens(self, job_id: str) -> tuple[int, int]:
        """Prompt and completion tokens of the job's recorded results."""
        ...

    def cancel_job(self, job_id: str, *, now: float) -> Job:
        """Cancel the job's queued requests; leased ones finish, results so far are kept."""
        ...

    def queue_groups(self, model: str) -> list[QueueGroup]:
        """The model's queue summarised per (tier, team): counts and oldest request."""
        ...

    def queue_depth(self) -> dict[tuple[str, str], int]:
        """Queued requests per (model, tier)."""
        ...

    def lease_batch(
        self, runner_id: str, model: str, picks: Sequence[Pick], *, ttl_s: float, now: float,
        lend_check: LendCheck | None = None,
    ) -> tuple[Lease, list[Request]] | None:
        """Lease, atomically, the oldest queued requests each pick names (from the queue
        ``model``), and mark an idle runner busy; None if none were left, or if the runner
        drains or has stopped (it may take no new work).

        ``lend_check``: the grant lends the runner to work below the online tier; it is asked,
        in the same transaction and under a lock on the runner's model that every such grant
        takes (across API replicas), and a False leases nothing."""
        ...

    def renew_lease(self, lease_id: str, runner_id: str, *, ttl_s: float, now: float) -> float:
        """Extend a live lease; returns the new expiry. Raises LeaseLost if it is gone."""
        ...

    def complete(
        self,
        lease_id: str,
        runner_id: str,
        outcomes: Sequence[RequestOutcome],
        *,
        started_at: float,
        ended_at: float,
        now: float,
        returned: Sequence[str] = (),
    ) -> CompletionSummary:
        """Record a lease's report: results (first result wins) and one batch record; release
        the lease; a busy runner with no open lease left goes back to idle. ``returned``:
        requests its runner handed back unfinished when reclaimed for online work; they go
        back to the queue with the attempt not counted.

        The report may name only requests its lease granted (else Conflict, and nothing is
        recorded). What it leaves out, and its retryable failures, go back to the queue (or
        fail, out of attempts); what belongs to a cancelled job ends cancelled. A request
        that already ended (succeeded, failed, cancelled) takes no result. Reporting a lease
        again records nothing (``repeated``); a report after the lease expired still records
        results where none exists yet."""
        ...

    def leased_requests_of_runner(self, runner_id: str) -> list[tuple[str, str]]:
        """(request id, tier) of every request the runner holds under an open lease."""
        ...

    def report(
        self,
        lease_id: str,
        runner_id: str,
        outcomes: Sequence[RequestOutcome],
        *,
        report_id: str,
        started_at: float,
        ended_at: float,
        now: float,
        rows: int | None = None,
        returned: Sequence[str] = (),
    ) -> CompletionSummary:
        """Record the results of some of a lease's requests as they finish (continuous
        batching), with one batch record for the runner's time ``started_at..ended_at``;
        its size is ``rows``, how many rows the loop decoded together meanwhile (on
        average), else the number of results. ``returned``: rows the runner's loop dropped
        unfinished when it was reclaimed for online work; they go back to the queue with the
        attempt not counted.

        Only final results (successes, failures that no retry can fix); the report may name
        only requests its lease granted (else Conflict). Nothing is put back: the rest of the
        lease is still running. Once none of its requests is left running, the lease is
        released and a busy runner with no open lease left goes back to idle. The same
        ``report_id`` again records nothing (``repeated``)."""
        ...

    def expire_leases(self, *, now: float) -> list[str]:
        """Put the requests of expired leases back (or fail them past max attempts).

        Returns the models that got requests back.
        """
        ...

    def resume_staged_jobs(self, *, now: float, stale_after_s: float = 30.0,
                           abandon_after_s: float = 3600.0) -> list[str]:
        """Finish what a crashed submission of a big job left half done: move an admitted
        job's staged requests into the queue (pages staged over ``stale_after_s`` ago), and
        drop those of a submission never admitted (over ``abandon_after_s`` ago). Returns the
        jobs whose requests moved."""
        ...

    def register_runner(
        self,
        *,
        name: str,
        model: str,
        pid: int | None,
        host: str,
        max_batch_size: int,
        max_wait_ms: int,
        now: float,
        revision: str | None = None,
        launched_at: float | None = None,
    ) -> Runner:
        """Record a new runner in state ``starting``, with the checkpoint revision it was
        given (None: the configured checkpoint). ``launched_at``: when its process started
        (its ``starting`` time runs from then; None: from ``now``)."""
        ...

    def get_runner(self, runner_id: str) -> Runner:
        """A runner; raises NotFound."""
        ...

    def list_runners(self, *, include_stopped: bool = False) -> list[Runner]:
        """Runners in registration order."""
        ...

    def set_runner_state(self, runner_id: str, state: RunnerState, *, now: float) -> Runner:
        """Move a runner to ``state``, closing its open interval; raises Conflict if illegal."""
        ...

    def touch_runner(self, runner_id: str, *, now: float) -> Runner:
        """Record a heartbeat."""
        ...

    def stop_lost_runners(self, *, timeout_s: float, now: float) -> list[str]:
        """Mark runners silent for ``timeout_s`` as stopped; returns their ids."""
        ...

    def runner_intervals(self, runner_id: str) -> list[RunnerInterval]:
        """A runner's state history."""
        ...

    def batch_records(self) -> list[BatchRecord]:
        """Every batch pass, oldest first."""
        ...

    def job_batches(self, job_id: str) -> list[JobBatch]:
        """The batch passes whose recorded results belong to the job, oldest first."""
        ...

    def usage_records(self, *, since: float, until: float,
                      classes: Mapping[str, RunnerClass],
                      default_class: RunnerClass) -> UsageRecords:
        """The state intervals, batches (with their recorded results) and jobs that overlap
        ``[since, until)``; each runner gets its model's class from ``classes``."""
        ...

    def counter(self, name: str) -> int:
        """A named event counter (e.g. ``duplicate_results``)."""
        ...

    def count_event(self, name: str, *, by: int = 1) -> None:
        """Add ``by`` to a named event counter (e.g. ``provider_rate_limits``)."""
        ...

    def expire_jobs(self, *, now: float) -> list[str]:
        """Cancel what has not run of the jobs past their deadline (``expires_at``). Returns
        their ids."""
        ...

    def announce_partials(self, texts: dict[str, str]) -> None:
        """Tell the other API replicas the text streamed requests have so far (channel
        ``stoker_stream``); best effort, never raises for an unreachable database."""
        ...

    def subscribe(self, on_news: Callable[[str, str], None]) -> Callable[[], None]:
        """Hear other API replicas' announcements (work for a model, job progress); returns a
        function that stops listening."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
