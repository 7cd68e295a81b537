"""Durable state behind one interface: :class:`Store`, implemented on SQLite (and PostgreSQL)."""

from stoker.store.protocol import (
    CompletionSummary,
    JobBatch,
    NewJob,
    NewRequest,
    RequestOutcome,
    ResultRow,
    Store,
)

__all__ = [
    "CompletionSummary",
    "JobBatch",
    "NewJob",
    "NewRequest",
    "RequestOutcome",
    "ResultRow",
    "Store",
]
