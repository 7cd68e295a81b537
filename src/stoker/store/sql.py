"""The store's operations in SQL, shared by every dialect.

Subclasses provide the connection: transactions (``_tx``), statements by query name (``_x``,
``_xmany``, ``_all``, ``_one``), and an announcement hook that lets other API replicas know
that work arrived or jobs moved. Only dialect gaps differ between them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from stoker.core.batching import Pick
from stoker.core.commands import is_command_queue, queue_model
from stoker.core.model import (
    BatchRecord,
    Job,
    Lease,
    QueueGroup,
    Request,
)
from stoker.errors import (
    Conflict,
    LeaseLost,
)
from stoker.store import rows
from stoker.store.ids import new_id, utc_day
from stoker.store.protocol import (
    CompletionSummary,
    JobBatch,
    LendCheck,
    RequestOutcome,
    ResultRow,
)
from stoker.store.sql_base import CACHE_HITS, LEASES_EXPIRED, PROGRESS, WORK
from stoker.store.sql_callbacks import CallbacksSQL
from stoker.store.sql_commands import CommandsSQL
from stoker.store.sql_pool import PoolSQL
from stoker.store.sql_runners import RunnersSQL
from stoker.store.sql_submit import SubmitSQL
from stoker.store.sql_usage import UsageSQL

DUPLICATE_RESULTS = "duplicate_results"
PROVIDER_RATE_LIMITS = "provider_rate_limits"
COUNTERS = (DUPLICATE_RESULTS, LEASES_EXPIRED, CACHE_HITS, PROVIDER_RATE_LIMITS)


def put_back_counts(cursor: Any) -> tuple[int, int]:
    """(requeued, failed) among the statuses ``put_back_leased`` returned."""
    statuses = [str(status) for (status,) in cursor.fetchall()]
    return statuses.count("queued"), statuses.count("failed")


def report_batch_id(lease_id: str, report_id: str) -> str:
    """The batch record of one partial report: the same report sent twice is one batch."""
    digest = hashlib.sha256(f"{lease_id}\n{report_id}".encode()).hexdigest()[:24]
    return f"batch_{digest}"


def _check_report_in_lease(lease_id: str, granted: Sequence[str],
                           outcomes: Sequence[RequestOutcome],
                           returned: Sequence[str] = ()) -> None:
    """A report may speak only of the requests its lease granted."""
    foreign = sorted(({o.request_id for o in outcomes} | set(returned)) - set(granted))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5
                                          else "")
        raise Conflict(f"the report names requests that lease {lease_id!r} did not grant: "
                       f"{shown}; nothing of it was recorded")


class SQLStore(SubmitSQL, UsageSQL, RunnersSQL, PoolSQL, CallbacksSQL, CommandsSQL):
    """:class:`stoker.store.Store` over any connection that speaks our named queries."""

    # -- jobs ------------------------------------------------------------------------------

    def list_jobs(self, *, limit: int, team: str | None = None) -> list[Job]:
        """Most recent jobs first, of one team or of all."""
        return [
            rows.job_from(r, rows.counts_from(self._all("job_counts", job_id=r[0])))
            for r in self._all("list_jobs", limit=limit, team=team)
        ]

    def job_results(self, job_id: str) -> list[ResultRow]:
        """Every request of the job with its result, in submission order."""
        self.get_job(job_id)
        return [rows.result_from(r) for r in self._all("job_results", job_id=job_id)]

    def iter_job_results(self, job_id: str, *, page: int = 2000) -> Iterator[ResultRow]:
        """The job's rows, a page at a time (keyset paging: each page one indexed read)."""
        self.get_job(job_id)
        after = -1
        while True:
            chunk = self._all("job_results_page", job_id=job_id, after=after, page=page)
            yield from (rows.result_from(r[:-1]) for r in chunk)
            if len(chunk) < page:
                return
            after = int(chunk[-1][-1])

    def job_tokens(self, job_id: str) -> tuple[int, int]:
        """Prompt and completion tokens of the job's recorded results."""
        prompt, completion = self._one("job_tokens", job_id=job_id)
        return int(prompt), int(completion)

    def cancel_job(self, job_id: str, *, now: float) -> Job:
        """Cancel a job's queued requests; what is leased finishes and is kept."""
        self.get_job(job_id)
        with self._tx() as conn:
            self._cancel_job_in(conn, job_id, now)
        return self.get_job(job_id)

    def expire_jobs(self, *, now: float) -> list[str]:
        """Cancel what has not run of the jobs past their deadline."""
        with self._tx() as conn:
            overdue = [job_id for (job_id,) in self._x(conn, "overdue_jobs", now=now)]
            for job_id in overdue:
                self._cancel_job_in(conn, job_id, now)
        return overdue

    # -- the queue -------------------------------------------------------------------------

    def queue_groups(self, model: str) -> list[QueueGroup]:
        """The model's queue per (tier, team)."""
        return [QueueGroup(tier=r[0], team=r[1], queued=r[2], head_enqueued_at=r[3])
                for r in self._all("queue_groups", model=model)]

    def queue_depth(self) -> dict[tuple[str, str], int]:
        """Queued requests per (model, tier)."""
        return {(m, t): n for m, t, n in self._all("queue_depth_by_model")}

    def lease_batch(
        self, runner_id: str, model: str, picks: Sequence[Pick], *, ttl_s: float, now: float,
        lend_check: LendCheck | None = None,
    ) -> tuple[Lease, list[Request]] | None:
        """Lease the oldest queued requests of each pick, all in one transaction, step by
        step (SQLite, in process; PostgreSQL's store does it in one statement). SQLite's
        write transactions run one at a time, so a lending check in one holds."""
        lease_id = new_id("lease")
        # Not flushed before returning: a grant lost in a database crash leaves its requests
        # queued, and the runner's report is refused (LeaseLost), so they simply run again.
        with self._tx(durable=False) as conn:
            if self._x(conn, "runner_may_lease", id=runner_id).fetchone() is None:
                return None
            if lend_check is not None and not self._lend_allowed(conn, model, lend_check):
                return None
            taken = sum(
                self._x(conn, "lease_group", lease_id=lease_id, model=model, tier=p.tier,
                        team=p.team, count=p.count, runner_id=runner_id).rowcount
                for p in picks
            )
            if taken == 0:
                return None
            self._x(conn, "insert_lease", id=lease_id, runner_id=runner_id, model=model, now=now,
                    expires_at=now + ttl_s)
            if self._x(conn, "mark_busy", id=runner_id, now=now).rowcount:
                self._x(conn, "close_interval", runner_id=runner_id, now=now)
                self._x(conn, "open_interval", runner_id=runner_id, state="busy", now=now)
            leased = [rows.request_from(r) for r in self._x(conn, "leased_requests",
                                                            lease_id=lease_id).fetchall()]
        lease = Lease(lease_id, runner_id, model, now, now + ttl_s, tuple(r.id for r in leased))
        return lease, leased

    def _lend_allowed(self, conn: Any, queue: str, lend_check: LendCheck) -> bool:
        """Ask ``lend_check`` with the model's warm runners and leased tiers, read in the
        grant's transaction (under the model's lending lock where the dialect needs one)."""
        model = queue_model(queue)
        self._lock_lending(conn, model)
        warm = int(self._x(conn, "warm_runners", model=model).fetchone()[0])
        held: dict[str, set[str]] = {}
        for runner, tier in self._x(conn, "leased_tiers_by_runner", model=model).fetchall():
            held.setdefault(str(runner), set()).add(str(tier))
        return lend_check(warm, {r: frozenset(t) for r, t in held.items()})

    def _lock_lending(self, conn: Any, model: str) -> None:
        """Hold the model's lending lock to the end of the transaction (SQLite: its write
        transaction is lock enough)."""

    def renew_lease(self, lease_id: str, runner_id: str, *, ttl_s: float, now: float) -> float:
        """Push a live lease's expiry to ``now + ttl_s``."""
        with self._tx(durable=False) as conn:
            n = self._x(conn, "renew_lease", id=lease_id, runner_id=runner_id, now=now,
                        expires_at=now + ttl_s).rowcount
        if n == 0:
            raise LeaseLost(f"lease {lease_id!r} has expired or was released")
        return now + ttl_s

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
        """Record a lease's report (see :class:`Store`): first result wins, one batch record
        per lease, what the report left out goes back to the queue."""
        batch_id = new_id("batch")
        retry = [o for o in outcomes if o.error is not None and o.retryable]
        final = [o for o in outcomes if not (o.error is not None and o.retryable)]
        with self._tx() as conn:
            lease = self._x(conn, "lease_for_report", id=lease_id).fetchone()
            if lease is None or lease[1] != runner_id:
                raise LeaseLost(f"lease {lease_id!r} does not belong to runner {runner_id!r}")
            model, live, granted = str(lease[2]), lease[3] is None, json.loads(lease[4])
            _check_report_in_lease(lease_id, granted, outcomes, returned=returned)
            if lease[5] is not None:
                # The same report again (a retried call): recorded once already.
                self._x(conn, "bump_counter", name=DUPLICATE_RESULTS, by=len(final))
                return CompletionSummary(0, len(final), 0, 0, model=model, repeated=True)
            left_out = live and len({o.request_id for o in outcomes}) < len(granted)
            if live and returned:
                # Handed back for online work: not a failed attempt.
                self._xmany(conn, "return_reclaimed",
                            [{"id": rid, "lease_id": lease_id} for rid in set(returned)])
                if is_command_queue(model):  # its time went into its checkpoint: its job's
                    self._xmany(conn, "record_checkpointed_run",
                                [{"batch_id": batch_id, "id": rid} for rid in set(returned)])
            # Nothing below needs an answer before the next statement: on PostgreSQL they go
            # to the server together (one round trip) and the counts are read after.
            with self._pipeline(conn):
                inserted = self._record_results(conn, final, runner_id, batch_id, now)
                self._insert_batch(conn, batch_id, runner_id, model, lease_id, outcomes,
                                   started_at, ended_at)
                put_back = self._put_back(conn, lease_id, retry, now,
                                          "left out of its runner's report")
                self._x(conn, "release_lease", id=lease_id, now=now, outcome="completed")
                self._x(conn, "mark_lease_reported", id=lease_id, now=now)
                self._x(conn, "finish_jobs_of_requests", ids=lease[4], now=now)
                self._runner_done_with_batch(conn, runner_id, now)
                self._announce(conn, PROGRESS, "")
                if retry or left_out:
                    self._announce(conn, WORK, model)
            recorded = inserted.rowcount if inserted is not None else 0
            duplicates = len(final) - recorded
            if duplicates:
                self._x(conn, "bump_counter", name=DUPLICATE_RESULTS, by=duplicates)
            requeued, failed = put_back_counts(put_back)
        return CompletionSummary(recorded, duplicates, requeued, failed, model=model)

    def leased_requests_of_runner(self, runner_id: str) -> list[tuple[str, str]]:
        """What the runner holds under open leases, with each request's tier."""
        return [(str(rid), str(tier))
                for rid, tier in self._all("leased_requests_of_runner", runner_id=runner_id)]

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
        """Record part of a lease's results as its rows finish (see :class:`Store`): one batch
        record per report, the lease released once nothing of it is left running."""
        if any(o.error is not None and o.retryable for o in outcomes):
            raise Conflict("a partial report carries only final results; report retryable "
                           "failures with the lease's completion")
        batch_id = report_batch_id(lease_id, report_id)
        with self._tx() as conn:
            lease = self._x(conn, "lease_for_report", id=lease_id).fetchone()
            if lease is None or lease[1] != runner_id:
                raise LeaseLost(f"lease {lease_id!r} does not belong to runner {runner_id!r}")
            model = str(lease[2])
            _check_report_in_lease(lease_id, json.loads(lease[4]), outcomes,
                                   returned=returned)
            if self._x(conn, "batch_exists", id=batch_id).fetchone() is not None:
                self._x(conn, "bump_counter", name=DUPLICATE_RESULTS, by=len(outcomes))
                return CompletionSummary(0, len(outcomes), 0, 0, model=model, repeated=True)
            if returned and lease[3] is None:
                self._xmany(conn, "return_reclaimed",
                            [{"id": rid, "lease_id": lease_id} for rid in set(returned)])
                self._announce(conn, WORK, model)
            inserted = self._record_results(conn, outcomes, runner_id, batch_id, now)
            self._insert_batch(conn, batch_id, runner_id, model, lease_id, outcomes,
                               started_at, ended_at, rows=rows)
            self._x(conn, "finish_jobs_of_requests",
                    ids=json.dumps([o.request_id for o in outcomes]), now=now)
            (running,) = self._x(conn, "lease_running", id=lease_id).fetchone()
            if lease[3] is None and int(running) == 0:
                self._x(conn, "release_lease", id=lease_id, now=now, outcome="completed")
                self._x(conn, "mark_lease_reported", id=lease_id, now=now)
                self._runner_done_with_batch(conn, runner_id, now)
            self._announce(conn, PROGRESS, "")
            recorded = inserted.rowcount if inserted is not None else 0
            if len(outcomes) - recorded:
                self._x(conn, "bump_counter", name=DUPLICATE_RESULTS, by=len(outcomes) - recorded)
        return CompletionSummary(recorded, len(outcomes) - recorded, len(set(returned)), 0,
                                 model=model)

    def _insert_batch(self, conn: Any, batch_id: str, runner_id: str, model: str,
                      lease_id: str, outcomes: Sequence[RequestOutcome], started_at: float,
                      ended_at: float, *, rows: int | None = None) -> None:
        """The batch record of one report: the runner's time, what it produced, and how many
        rows were decoded together (``rows``; else the report's own requests)."""
        self._x(conn, "insert_batch", id=batch_id, runner_id=runner_id, model=model,
                lease_id=lease_id, started_at=started_at, ended_at=ended_at,
                request_ids=json.dumps([o.request_id for o in outcomes]),
                request_count=rows or len(outcomes),
                prompt_tokens=sum(o.prompt_tokens for o in outcomes),
                completion_tokens=sum(o.completion_tokens for o in outcomes))

    def _put_back(self, conn: Any, lease_id: str, retry: Sequence[RequestOutcome],
                  now: float, error: str) -> Any:
        """What the lease still holds once its results are in: a cancelled job's requests
        end cancelled; retryable failures (with their own error) and requests the report
        left out (with ``error``) go back to the queue, or fail once out of attempts.
        Returns the cursor whose rows are the new statuses (see :func:`put_back_counts`)."""
        errors = json.dumps({o.request_id: o.error for o in retry})
        return self._x(conn, "put_back_leased", lease_id=lease_id, errors=errors,
                       error=error, now=now)

    def _record_results(self, conn: Any, final: Sequence[RequestOutcome], runner_id: str,
                        batch_id: str, now: float) -> Any:
        """Insert the first result of each request (repeats are ignored) and finish them.

        Returns the insert's cursor (None if there was nothing to insert): its ``rowcount``,
        read once any pipeline around this has been sent, is how many were recorded."""
        outcomes = json.dumps([
            {"request_id": o.request_id, "text": o.text, "finish_reason": o.finish_reason,
             "prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens,
             "error": o.error, "stop_sequence": o.stop_sequence,
             "logprobs": json.dumps(o.logprobs) if o.logprobs is not None else None,
             "tool_calls": json.dumps(o.tool_calls) if o.tool_calls is not None else None}
            for o in final])
        # One statement each for the whole batch (PostgreSQL's queue trigger is per statement).
        inserted = None
        if final:
            inserted = self._x(conn, "insert_results", outcomes=outcomes, runner_id=runner_id,
                               batch_id=batch_id, now=now)
            self._x(conn, "finish_requests", outcomes=outcomes, now=now)
        self._x(conn, "add_batch_usage", batch_id=batch_id, day=utc_day(now))
        if final:
            self._x(conn, "cache_store", outcomes=outcomes, now=now)
        return inserted

    def _runner_done_with_batch(self, conn: Any, runner_id: str, now: float) -> None:
        """A busy runner with no open lease left is idle again."""
        if self._x(conn, "mark_idle", id=runner_id, now=now).rowcount:
            self._x(conn, "close_interval", runner_id=runner_id, now=now)
            self._x(conn, "open_interval", runner_id=runner_id, state="idle", now=now)

    def expire_leases(self, *, now: float) -> list[str]:
        """Requeue (or fail, past max attempts) the requests of every expired lease, and fold
        the queue summary's and token usage's pending changes in (PostgreSQL)."""
        # Each fold moves pending rows into their summary in one statement, so a fold lost
        # in a crash loses its deletions with its additions: it need not wait for the disk.
        with self._tx(durable=False) as conn:
            self._x(conn, "fold_queue_summary")
            self._x(conn, "fold_usage")
        models: set[str] = set()
        with self._tx() as conn:
            for (lease_id,) in self._x(conn, "expired_leases", now=now).fetchall():
                self._release_lease(conn, lease_id, now, "expired")
                models.add(self._x(conn, "get_lease", id=lease_id).fetchone()[2])
            for model in models:
                self._announce(conn, WORK, model)
            if models:
                self._announce(conn, PROGRESS, "")
        return sorted(models)

    # -- records ---------------------------------------------------------------------------

    def batch_records(self) -> list[BatchRecord]:
        """Every batch pass, oldest first."""
        return [rows.batch_from(r) for r in self._all("list_batches")]

    def job_batches(self, job_id: str) -> list[JobBatch]:
        """The batch passes that recorded results of the job."""
        self.get_job(job_id)
        return [JobBatch(rows.batch_from(r[:9]), int(r[9]))
                for r in self._all("job_batches", job_id=job_id)]

    def counter(self, name: str) -> int:
        """A named event counter."""
        row = self._one("get_counter", name=name)
        return int(row[0]) if row else 0

    def count_event(self, name: str, *, by: int = 1) -> None:
        """Add ``by`` to a named event counter."""
        with self._tx() as conn:
            self._x(conn, "bump_counter", name=name, by=by)
