"""OpenAI-API files and batches in SQL. A batch with valid lines is a job, stored with it in
the job's transaction (see ``SQLStore.submit_job``); the rest lives here."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from stoker.errors import Conflict, NotFound
from stoker.store.ids import new_id
from stoker.store.protocol_openai import NewBatch, OpenAIBatch, StoredFile
from stoker.store.sql_base import SQLBase

# Before every real row: the start of a newest-first listing with no cursor.
_NO_CURSOR = (float("inf"), "\uffff")


def _file_from(row: Sequence[Any]) -> StoredFile:
    file_id, team, purpose, filename, size, created_at = row
    return StoredFile(file_id, team, purpose, filename, int(size), float(created_at))


def _batch_from(row: Sequence[Any]) -> OpenAIBatch:
    (batch_id, team, job_id, endpoint, input_file_id, window, metadata, created_at, expires_at,
     total_lines, invalid_lines, errors, failed_at, cancelling_at, expired_at) = row
    return OpenAIBatch(
        id=batch_id, team=team, job_id=job_id, endpoint=endpoint, input_file_id=input_file_id,
        completion_window=window, metadata=json.loads(metadata), created_at=created_at,
        expires_at=expires_at, total_lines=int(total_lines),
        invalid_lines=tuple(json.loads(invalid_lines)),
        errors=tuple(json.loads(errors)) if errors is not None else None,
        failed_at=failed_at, cancelling_at=cancelling_at, expired_at=expired_at,
    )


class OpenAIObjectsSQL(SQLBase):
    """Files and batches of the OpenAI-compatible API."""

    # -- files -----------------------------------------------------------------------------

    def create_file(self, *, team: str, purpose: str, filename: str, content: bytes,
                    now: float) -> StoredFile:
        """Store an uploaded file."""
        file_id = new_id("file")
        with self._tx() as conn:
            self._x(conn, "insert_file", id=file_id, team=team, purpose=purpose,
                    filename=filename, bytes=len(content), content=content, now=now)
        return StoredFile(file_id, team, purpose, filename, len(content), now)

    def get_file(self, file_id: str) -> StoredFile:
        """A file's metadata."""
        row = self._one("get_file", id=file_id)
        if row is None:
            raise NotFound(f"no file {file_id!r}")
        return _file_from(row)

    def file_content(self, file_id: str) -> bytes:
        """A file's bytes."""
        row = self._one("file_content", id=file_id)
        if row is None:
            raise NotFound(f"no file {file_id!r}")
        return bytes(row[0])

    def delete_file(self, file_id: str, *, now: float) -> None:
        """Delete a file and drop its content."""
        with self._tx() as conn:
            if self._x(conn, "delete_file", id=file_id, now=now, empty=b"").rowcount == 0:
                raise NotFound(f"no file {file_id!r}")

    def list_files(self, *, team: str, purpose: str | None, after: str | None,
                   limit: int) -> list[StoredFile]:
        """A team's files, newest first."""
        before = _NO_CURSOR
        if after is not None:
            cursor = self.get_file(after)
            before = (cursor.created_at, cursor.id)
        return [_file_from(r) for r in self._all(
            "list_files", team=team, purpose=purpose, before_at=before[0], before_id=before[1],
            limit=limit)]

    # -- batches ---------------------------------------------------------------------------

    def _insert_openai_batch(self, conn: Any, batch: NewBatch, batch_id: str,
                             job_id: str | None, now: float,
                             errors: Sequence[dict[str, Any]] | None = None) -> None:
        self._x(conn, "insert_openai_batch", id=batch_id, team=batch.team, job_id=job_id,
                endpoint=batch.endpoint, input_file_id=batch.input_file_id,
                completion_window=batch.completion_window, metadata=json.dumps(batch.metadata),
                now=now, expires_at=now + batch.window_s, total_lines=batch.total_lines,
                invalid_lines=json.dumps(list(batch.invalid_lines)),
                errors=json.dumps(list(errors)) if errors is not None else None,
                failed_at=now if errors is not None else None)

    def record_failed_batch(self, batch: NewBatch, errors: Sequence[dict[str, Any]], *,
                            now: float) -> OpenAIBatch:
        """Store a batch that failed validation as a whole."""
        batch_id = new_id("batch")
        with self._tx() as conn:
            self._insert_openai_batch(conn, batch, batch_id, None, now, errors)
        return self.get_openai_batch(batch_id)

    def get_openai_batch(self, batch_id: str) -> OpenAIBatch:
        """A batch by id."""
        row = self._one("get_openai_batch", id=batch_id)
        if row is None:
            raise NotFound(f"no batch {batch_id!r}")
        return _batch_from(row)

    def list_openai_batches(self, *, team: str, after: str | None,
                            limit: int) -> list[OpenAIBatch]:
        """A team's batches, newest first."""
        before = _NO_CURSOR
        if after is not None:
            cursor = self.get_openai_batch(after)
            before = (cursor.created_at, cursor.id)
        return [_batch_from(r) for r in self._all(
            "list_openai_batches", team=team, before_at=before[0], before_id=before[1],
            limit=limit)]

    def cancel_openai_batch(self, batch_id: str, *, now: float) -> OpenAIBatch:
        """Mark the batch cancelling and cancel its job's queued requests."""
        batch = self.get_openai_batch(batch_id)
        if batch.job_id is None:
            raise Conflict(f"batch {batch_id!r} failed validation; there is nothing to cancel")
        with self._tx() as conn:
            self._x(conn, "mark_openai_batch_cancelling", id=batch_id, now=now)
            self._cancel_job_in(conn, batch.job_id, now)
        return self.get_openai_batch(batch_id)

    def expire_openai_batches(self, *, now: float) -> list[str]:
        """Expire unfinished batches past their completion window."""
        with self._tx() as conn:
            overdue = self._x(conn, "overdue_openai_batches", now=now).fetchall()
            for batch_id, job_id in overdue:
                self._x(conn, "mark_openai_batch_expired", id=batch_id, now=now)
                self._cancel_job_in(conn, job_id, now)
        return [batch_id for batch_id, _ in overdue]
