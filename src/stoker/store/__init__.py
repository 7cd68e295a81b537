"""Durable state behind one interface: :class:`Store`, implemented on SQLite (and PostgreSQL)."""

from stoker.store.protocol import (
    CompletionSummary,
    JobBatch,
    NewJob,
    NewRequest,
    RequestOutcome,
    ResultRow,
    Store,
    Submission,
)

__all__ = [
    "CompletionSummary",
    "JobBatch",
    "NewJob",
    "NewRequest",
    "RequestOutcome",
    "ResultRow",
    "Store",
    "Submission",
]
