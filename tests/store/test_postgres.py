"""What is particular to the PostgreSQL store: migrations under concurrent starts, and
announcements heard by other replicas."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

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
            if (channel, payload) == ("stoker_work", "m\t1\tbatch"):  # model, requests, tier
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


def test_streamed_text_is_announced_to_other_replicas() -> None:
    from stoker.store.postgres import PostgresStore

    with fresh_database() as url:
        listener, writer = PostgresStore(url, max_size=2), PostgresStore(url, max_size=2)
        connected, heard = threading.Event(), []
        done = threading.Event()

        def on_news(channel: str, payload: str) -> None:
            if payload == "*":
                connected.set()
            if channel == "stoker_stream":
                heard.append(payload)
                done.set()

        stop = listener.subscribe(on_news)
        assert connected.wait(10)
        # One too big for a notification is left out (the final result carries it).
        writer.announce_partials({"req_1": "Once upon a\ttime", "req_2": "x" * 9000})
        assert done.wait(10)
        stop()
        listener.close()
        writer.close()
    assert heard == ["req_1\tOnce upon a\ttime"]


def test_cut_connections_cost_a_write_one_retryable_error_and_reads_nothing() -> None:
    from stoker.errors import Unavailable
    from stoker.store.postgres import PostgresStore

    job = NewJob(team="t", tier="batch", priority=40, model="m", max_attempts=3,
                 requests=[NewRequest("a", "/v1/completions", {"prompt": "x"})])
    with fresh_database() as url, psycopg.connect(url, autocommit=True) as admin:
        store = PostgresStore(url, min_size=1, max_size=1)
        job_id = store.submit_job(job, now=1.0).job.id

        def cut() -> None:
            # The server closes the pool's one connection, as a restart or a failover would
            # (waiting until it is gone); the pool does not check connections it hands out.
            admin.execute("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()",
                          (url.rsplit("/", 1)[1],))

        cut()
        assert store.get_job(job_id).counts.queued == 1  # a read is simply asked again
        cut()
        with pytest.raises(Unavailable) as refused:
            store.submit_job(job, now=2.0)
        assert refused.value.retryable
        assert "retry" in str(refused.value)
        assert [j.id for j in store.list_jobs(limit=10)] == [job_id]  # nothing half-stored
        store.submit_job(job, now=3.0)  # the broken connection was discarded
        assert len(store.list_jobs(limit=10)) == 2
        store.close()
