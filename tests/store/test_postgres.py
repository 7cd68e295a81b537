"""What is particular to the PostgreSQL store: migrations under concurrent starts, and
announcements heard by other replicas."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg

from stoker.store import NewJob, NewRequest
from stoker.store.queries import load_migrations
from tests.postgres import fresh_database


def test_replicas_starting_together_migrate_once() -> None:
    from stoker.store.postgres import PostgresStore

    with fresh_database() as url:
        with ThreadPoolExecutor(4) as pool:
            stores = list(pool.map(lambda _: PostgresStore(url, min_size=1, max_size=2),
                                   range(4)))
        for store in stores:
            store.close()
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
    assert sorted(versions) == [(m.version,) for m in load_migrations("postgresql")]


def test_a_submit_is_announced_to_other_replicas() -> None:
    from stoker.store.postgres import PostgresStore

    with fresh_database() as url:
        listener, writer = PostgresStore(url, max_size=2), PostgresStore(url, max_size=2)
        connected, got_work = threading.Event(), threading.Event()

        def on_news(channel: str, payload: str) -> None:
            if payload == "*":
                connected.set()  # the listener announces "*" once it is listening
            if (channel, payload) == ("stoker_work", "m\t1"):  # model and new requests
                got_work.set()

        stop = listener.subscribe(on_news)
        assert connected.wait(10)
        writer.submit_job(NewJob(team="t", tier="batch", priority=40, model="m",
                                 max_attempts=3,
                                 requests=[NewRequest("a", "/v1/completions", {"prompt": "x"})]),
                          now=1.0)
        assert got_work.wait(10)
        stop()
        listener.close()
        writer.close()
