"""Storing a submitted job: admission, idempotency, supersession and the request rows.

A job of up to ``ROWS_PER_STATEMENT`` requests is stored in one transaction. A bigger one is
first *staged*, a page of rows per transaction (``staged_requests``), then admitted in one
short transaction that writes the job row, then *moved* into the queue a page per
transaction. So no transaction holds SQLite's write lock, or a team's admission lock, for the
time 100,000 rows take to write, and an online request arriving meanwhile waits for one page
at most. Staged rows count as queued in the job's counts and keep it open; a page a crashed
mover left behind is moved by :meth:`SubmitSQL.resume_staged_jobs`, and the pages of a
submission that was never admitted are dropped by it once stale.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from stoker.core.admission import AdmissionState, Refuse, TeamLoad
from stoker.core.model import Job
from stoker.errors import Conflict, NotFound, RateLimited, StokerError, Unprocessable
from stoker.store import rows
from stoker.store.ids import new_id, utc_day
from stoker.store.job_rows import ROWS_PER_STATEMENT, PreparedJob, job_pages, prepare_job_rows
from stoker.store.protocol import AdmissionCheck, NewJob, Submission
from stoker.store.sql_base import CACHE_HITS, PROGRESS, WORK
from stoker.store.sql_openai import OpenAIObjectsSQL


def refusal_error(refusal: Refuse) -> StokerError:
    """The error a client gets for a refused submission: 429, or 422 if it can never pass."""
    if refusal.permanent:
        return Unprocessable(refusal.message)
    return RateLimited(refusal.message, retry_after_s=refusal.retry_after_s)


class SubmitSQL(OpenAIObjectsSQL):
    """Job submission over any dialect's connection (an OpenAI batch is stored with its job)."""

    def get_job(self, job_id: str) -> Job:
        """A job and its request counts."""
        row = self._one("get_job", id=job_id)
        if row is None:
            raise NotFound(f"no job {job_id!r}")
        return rows.job_from(row, rows.counts_from(self._all("job_counts", job_id=job_id)))

    def team_standing(self, team: str, *, now: float
                      ) -> tuple[TeamLoad, AdmissionState | None]:
        """What admission reads for ``team`` at ``now`` (see :class:`Store`)."""
        # Plain reads (no write lock): a report, not a decision, so they need not agree to
        # the instant.
        queued = self._one("team_queued", team=team)
        tokens = self._one("team_tokens_on", team=team, day=utc_day(now))
        row = self._one("read_admission", team=team)
        load = TeamLoad(int(queued[0]) if queued else 0, int(tokens[0]) if tokens else 0)
        return load, AdmissionState(*row) if row else None

    def submit_job(self, job: NewJob, *, now: float,
                   admission: AdmissionCheck | None = None) -> Submission:
        """Store a job and all of its requests, all or nothing (see :class:`Store`)."""
        job_id = new_id("job")
        if len(job.requests) <= ROWS_PER_STATEMENT:
            # Rows are made (and cached answers looked up) before the write lock is taken; a
            # cached answer that appears meanwhile is only a miss.
            prepared = prepare_job_rows(job, job_id, now, self._cached_answers)
            return self._admit_job(job, job_id, prepared.count, now, admission, prepared)
        count = self._stage(job, job_id, now)
        try:
            submission = self._admit_job(job, job_id, count, now, admission, None)
        except BaseException:
            self._drop_staged(job_id)
            raise
        if not submission.created:
            self._drop_staged(job_id)
            return submission
        self._move_staged(job_id)
        return Submission(self.get_job(job_id), created=True,
                          superseded=submission.superseded, batch_id=submission.batch_id)

    def _admit_job(self, job: NewJob, job_id: str, count: int, now: float,
                   admission: AdmissionCheck | None,
                   prepared: PreparedJob | None) -> Submission:
        """The job row (and, unless staged, its requests) in one transaction, if admitted."""
        batch_id = new_id("batch") if job.batch is not None else None
        refusal: Refuse | None = None
        existing: str | None = None
        superseded: list[str] = []
        try:
            with self._tx() as conn:
                existing = self._idempotent_match(conn, job)
                if existing is None and admission is not None:
                    refusal = self._admit(conn, job, admission, now)
                if existing is None and refusal is None:
                    if job.concurrency_group is not None and job.cancel_in_progress:
                        superseded = self._supersede(conn, job, job_id, now)
                    # A staged job's rows come after, moved a page at a time.
                    self._insert_job(conn, job, job_id, count, prepared or PreparedJob(), now)
                    if job.batch is not None and batch_id is not None:
                        self._insert_openai_batch(conn, job.batch, batch_id, job_id, now)
                    if prepared is not None:
                        self._announce(conn, WORK, f"{job.queue_name}\t{count}\t{job.tier}")
                    if superseded:
                        self._announce(conn, PROGRESS, "")
        except self.integrity_errors:
            # Another replica stored the same idempotency key first: theirs is the job.
            if job.idempotency_key is None:
                raise
            with self._tx() as conn:
                existing = self._idempotent_match(conn, job)
            if existing is None:
                raise
        if refusal is not None:
            raise refusal_error(refusal)
        if existing is not None:
            return Submission(self.get_job(existing), created=False)
        return Submission(self.get_job(job_id), created=True, superseded=tuple(superseded),
                          batch_id=batch_id)

    def _idempotent_match(self, conn: Any, job: NewJob) -> str | None:
        if job.idempotency_key is None:
            return None
        row = self._x(conn, "job_by_idempotency_key", team=job.team,
                      key=job.idempotency_key).fetchone()
        if row is None:
            return None
        if row[1] is not None and job.fingerprint is not None and row[1] != job.fingerprint:
            raise Conflict(f"Idempotency-Key {job.idempotency_key!r} was used for job {row[0]} "
                           "with a different request; send the same request to get that job "
                           "back, or use a new key for new work")
        return str(row[0])

    def _admit(self, conn: Any, job: NewJob, admission: AdmissionCheck,
               now: float) -> Refuse | None:
        # Decide under the team's lock: what is queued and used is read after every
        # concurrent submission of the team has committed or given up.
        self._x(conn, "lock_team_admission", team=job.team)
        queued = self._x(conn, "team_queued", team=job.team).fetchone()[0]
        tokens = self._x(conn, "team_tokens_on", team=job.team, day=utc_day(now)).fetchone()[0]
        row = self._x(conn, "get_admission", team=job.team).fetchone()
        state = AdmissionState(*row) if row else None
        decision, new_state = admission(TeamLoad(int(queued), int(tokens)), state)
        self._x(conn, "put_admission", team=job.team, **asdict(new_state))
        return decision if isinstance(decision, Refuse) else None

    def _supersede(self, conn: Any, job: NewJob, job_id: str, now: float) -> list[str]:
        older = [j for (j,) in self._x(conn, "open_jobs_in_group", team=job.team,
                                       group=job.concurrency_group).fetchall()]
        for old in older:
            self._x(conn, "supersede_job", id=old, by=job_id, now=now)
            self._x(conn, "cancel_queued_requests", job_id=old, now=now)
        self._finish_jobs(conn, set(older), now)
        return older

    def _insert_job(self, conn: Any, job: NewJob, job_id: str, count: int,
                    prepared: PreparedJob, now: float) -> None:
        self._x(conn, "insert_job", id=job_id, team=job.team, tier=job.tier, model=job.model,
                created_at=now, request_count=count,
                metadata=json.dumps(job.metadata), idempotency_key=job.idempotency_key,
                concurrency_group=job.concurrency_group, fingerprint=job.fingerprint,
                expires_at=None if job.expires_after_s is None else now + job.expires_after_s)
        if job.callback_url is not None:
            self._x(conn, "insert_job_callback", job_id=job_id, url=job.callback_url)
        # A statement per page of rows (PostgreSQL's queue trigger sums each statement once).
        for chunk in prepared.chunks:
            self._x(conn, "insert_requests", rows=chunk, job_id=job_id, model=job.queue_name,
                    tier=job.tier, team=job.team, priority=job.priority,
                    max_attempts=job.max_attempts, now=now, cancelled=False,
                    revision=job.revision)
        if prepared.hits:
            self._insert_hits(conn, prepared.hits)
            self._finish_jobs(conn, {job_id}, now)

    def _insert_hits(self, conn: Any, hits: list[dict[str, Any]]) -> None:
        self._xmany(conn, "insert_cached_result", hits)
        self._x(conn, "bump_counter", name=CACHE_HITS, by=len(hits))

    def _cached_answers(self, keys: list[str]) -> dict[str, tuple[Any, ...]]:
        """The result cache's answers for these fingerprints (one read)."""
        return {str(r[0]): tuple(r[1:]) for r in self._all("cache_lookup", keys=json.dumps(keys))}

    # -- big jobs: staged, admitted, moved ------------------------------------------------

    def _stage(self, job: NewJob, job_id: str, now: float) -> int:
        """Write the job's rows as staged pages, a transaction each; how many rows."""
        count = 0
        try:
            for number, page in enumerate(job_pages(job, job_id, now, self._cached_answers)):
                with self._tx() as conn:
                    self._x(conn, "stage_page", job_id=job_id, page=number,
                            request_count=page.count, model=job.queue_name, tier=job.tier,
                            team=job.team, priority=job.priority,
                            max_attempts=job.max_attempts, page_rows=page.rows,
                            page_hits=json.dumps(page.hits), now=now, revision=job.revision)
                count += page.count
        except BaseException:
            self._drop_staged(job_id)
            raise
        return count

    def _drop_staged(self, job_id: str) -> None:
        with self._tx() as conn:
            self._x(conn, "drop_staged", job_id=job_id)

    def _move_staged(self, job_id: str) -> None:
        """Move an admitted job's staged pages into the queue, a transaction per page."""
        pages = [int(p) for (p,) in self._all("staged_pages", job_id=job_id)]
        for number in pages:
            with self._tx() as conn:
                found = self._x(conn, "job_cancelled_for_move", job_id=job_id).fetchone()
                taken = self._x(conn, "take_staged_page", job_id=job_id, page=number).fetchone()
                if found is None or taken is None:
                    continue  # another mover took it
                (count, model, tier, team, priority, max_attempts, page_rows, hits, at,
                 revision) = taken
                cancelled = bool(found[0])
                self._x(conn, "insert_requests", rows=page_rows, job_id=job_id, model=model,
                        tier=tier, team=team, priority=priority, max_attempts=max_attempts,
                        now=float(at), cancelled=cancelled, revision=revision)
                if hits != "[]":
                    self._insert_hits(conn, json.loads(hits))
                if not cancelled:
                    self._announce(conn, WORK, f"{model}\t{count}\t{tier}")
                if number == pages[-1]:
                    self._finish_jobs(conn, {job_id}, float(at))
                    self._announce(conn, PROGRESS, "")

    def resume_staged_jobs(self, *, now: float, stale_after_s: float = 30.0,
                           abandon_after_s: float = 3600.0) -> list[str]:
        """Finish what a crashed submission left: an admitted job's staged pages older than
        ``stale_after_s`` are moved into the queue; a never-admitted submission's pages
        older than ``abandon_after_s`` are dropped. Returns the jobs whose pages moved."""
        moved = []
        for job_id, admitted, staged_at in self._all("staged_jobs"):
            age = now - float(staged_at)
            if admitted and age >= stale_after_s:
                self._move_staged(str(job_id))
                moved.append(str(job_id))
            elif not admitted and age >= abandon_after_s:
                self._drop_staged(str(job_id))
        return moved
