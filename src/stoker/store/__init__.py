"""Durable state behind one interface: :class:`Store`, implemented on SQLite and PostgreSQL."""

from pathlib import Path

from stoker.errors import InvalidRequest
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
from stoker.store.protocol_callbacks import CallbackState, DueCallback, JobCallback
from stoker.store.protocol_openai import NewBatch, OpenAIBatch, StoredFile
from stoker.store.protocol_pool import (
    ModelRoll,
    PoolDecisionRecord,
    PoolMeasurements,
    RollStatus,
)


def open_store(url: str | None, *, sqlite_path: Path, pool_size: int = 8) -> Store:
    """The store a URL names: PostgreSQL for ``postgresql://…`` (at most ``pool_size``
    connections), else SQLite at ``sqlite_path``."""
    if url is not None:
        from stoker.store.postgres import PostgresStore, is_postgres_url

        if not is_postgres_url(url):
            raise InvalidRequest("store must be a postgresql:// URL (or left out for SQLite)")
        return PostgresStore(url, max_size=pool_size)
    from stoker.store.sqlite import SQLiteStore

    return SQLiteStore(sqlite_path)


__all__ = [
    "CallbackState",
    "CompletionSummary",
    "DueCallback",
    "JobBatch",
    "JobCallback",
    "ModelRoll",
    "NewBatch",
    "NewJob",
    "NewRequest",
    "OpenAIBatch",
    "PoolDecisionRecord",
    "PoolMeasurements",
    "RequestOutcome",
    "ResultRow",
    "RollStatus",
    "Store",
    "StoredFile",
    "Submission",
    "open_store",
]
