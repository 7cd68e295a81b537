"""A fresh PostgreSQL database per test, or a skip that says why.

Set STOKER_TEST_POSTGRES to the server's admin URL (default: postgres on 127.0.0.1:5432) and
STOKER_REQUIRE_POSTGRES=1 (as .ci/run does) to fail instead of skipping when it is missing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

ADMIN_URL = os.environ.get("STOKER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> object:
    import psycopg

    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        reason = f"no PostgreSQL at {ADMIN_URL.rsplit('@', 1)[-1]}: {str(exc).splitlines()[0]}"
        if os.environ.get("STOKER_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database, yield its URL, drop it afterwards."""
    name = f"stoker_test_{uuid.uuid4().hex[:12]}"
    admin = _admin()
    admin.execute(f"CREATE DATABASE {name}")  # type: ignore[attr-defined]
    base = ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(  # type: ignore[attr-defined]
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        admin.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[attr-defined]
        admin.close()  # type: ignore[attr-defined]
