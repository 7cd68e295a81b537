"""The store's part in the OpenAI-compatible API: uploaded files and batches over them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class NewBatch:
    """An OpenAI-API batch being created over an uploaded input file.

    ``invalid_lines`` are the error-file lines of input lines that failed validation; the
    valid lines are the requests of the job the batch is stored with.
    """

    team: str
    endpoint: str
    input_file_id: str
    completion_window: str
    window_s: float
    metadata: dict[str, str]
    total_lines: int
    invalid_lines: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class OpenAIBatch:
    """A stored OpenAI-API batch; ``job_id`` is None when no line of its file was valid."""

    id: str
    team: str
    job_id: str | None
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, str]
    created_at: float
    expires_at: float
    total_lines: int
    invalid_lines: tuple[dict[str, Any], ...]
    errors: tuple[dict[str, Any], ...] | None
    failed_at: float | None
    cancelling_at: float | None
    expired_at: float | None


@dataclass(frozen=True, slots=True)
class StoredFile:
    """An uploaded file's metadata (its content is read separately)."""

    id: str
    team: str
    purpose: str
    filename: str
    bytes: int
    created_at: float



class OpenAIStore(Protocol):
    """Files and OpenAI-API batches (a batch's job is stored by ``submit_job``)."""

    def create_file(self, *, team: str, purpose: str, filename: str, content: bytes,
                    now: float) -> StoredFile:
        """Store an uploaded file."""
        ...

    def get_file(self, file_id: str) -> StoredFile:
        """A file's metadata; raises NotFound (also once deleted)."""
        ...

    def file_content(self, file_id: str) -> bytes:
        """A file's bytes; raises NotFound."""
        ...

    def delete_file(self, file_id: str, *, now: float) -> None:
        """Delete a file (its content is dropped); raises NotFound."""
        ...

    def list_files(self, *, team: str, purpose: str | None, after: str | None,
                   limit: int) -> list[StoredFile]:
        """A team's files, newest first, those older than file ``after`` when given."""
        ...

    def record_failed_batch(self, batch: NewBatch, errors: Sequence[dict[str, Any]], *,
                            now: float) -> OpenAIBatch:
        """Store a batch that failed validation as a whole (no job runs)."""
        ...

    def get_openai_batch(self, batch_id: str) -> OpenAIBatch:
        """A batch; raises NotFound."""
        ...

    def list_openai_batches(self, *, team: str, after: str | None,
                            limit: int) -> list[OpenAIBatch]:
        """A team's batches, newest first, those older than batch ``after`` when given."""
        ...

    def cancel_openai_batch(self, batch_id: str, *, now: float) -> OpenAIBatch:
        """Mark the batch cancelling and cancel its job's queued requests, in one step."""
        ...

    def expire_openai_batches(self, *, now: float) -> list[str]:
        """Expire unfinished batches past ``expires_at``: their queued requests are cancelled.
        Returns the expired batch ids."""
        ...
