"""The embedded store: one SQLite file in WAL mode with ``synchronous=FULL``.

A job acknowledged with a 2xx has been committed and fsynced, so it survives a power cut.
One connection serialised by a lock: SQLite has one writer at a time anyway.
"""

from __future__ import annotations

import sqlite3

from stoker.store.sql import SQLStore
from stoker.store.sqlite_base import SQLiteBase


class SQLiteStore(SQLiteBase, SQLStore):
    """:class:`stoker.store.Store` on one SQLite database file."""

    integrity_errors = (sqlite3.IntegrityError,)
