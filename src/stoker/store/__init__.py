"""Durable state behind one interface: :class:`Store`, implemented on SQLite (and PostgreSQL)."""

from stoker.store.protocol import (
    CompletionSummary,
    NewJob,
    NewRequest,
    RequestOutcome,
    ResultRow,
    Store,
)

__all__ = ["CompletionSummary", "NewJob", "NewRequest", "RequestOutcome", "ResultRow", "Store"]
