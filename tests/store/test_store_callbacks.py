"""Completion callbacks in the store: due once the job has finished, claimed by one sender at
a time, retried or given up, delivered once."""

from __future__ import annotations

from dataclasses import replace

from stoker.store import CallbackState, Store
from tests.store.test_store_contract import lease_all, new_job, ok, runner

URL = "https://hooks.example.com/stoker?token=abc"


def finished_job_with_callback(store: Store) -> str:
    job = store.submit_job(replace(new_job(1), callback_url=URL), now=1.0).job
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2.0, ended_at=3.0, now=3.0)
    return job.id


def test_a_callback_is_due_only_once_its_job_has_finished(store: Store) -> None:
    job = store.submit_job(replace(new_job(1), callback_url=URL), now=1.0).job
    assert not store.callbacks_due(now=2.0)
    assert store.claim_due_callbacks(now=2.0, hold_s=30.0) == []
    pending = store.get_job_callback(job.id)
    assert pending is not None
    assert (pending.state, pending.url, pending.attempts) == (CallbackState.PENDING, URL, 0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2.0, ended_at=3.0, now=3.0)
    assert store.callbacks_due(now=4.0)
    [due] = store.claim_due_callbacks(now=4.0, hold_s=30.0)
    assert (due.job_id, due.url, due.attempts) == (job.id, URL, 0)
    assert not store.callbacks_due(now=5.0)  # held by the sender that claimed it


def test_a_claimed_callback_is_held_from_other_senders(store: Store) -> None:
    job_id = finished_job_with_callback(store)
    assert [d.job_id for d in store.claim_due_callbacks(now=4.0, hold_s=30.0)] == [job_id]
    assert store.claim_due_callbacks(now=5.0, hold_s=30.0) == []
    # A sender that died holding it: the hold runs out and another sender takes it.
    assert [d.job_id for d in store.claim_due_callbacks(now=35.0, hold_s=30.0)] == [job_id]


def test_a_failed_delivery_is_retried_at_its_time_then_delivered_once(store: Store) -> None:
    job_id = finished_job_with_callback(store)
    store.claim_due_callbacks(now=4.0, hold_s=30.0)
    store.record_callback_failed(job_id, error="HTTP 503", retry_at=10.0, now=5.0)
    failed = store.get_job_callback(job_id)
    assert failed is not None
    assert (failed.attempts, failed.last_error, failed.state) == (1, "HTTP 503",
                                                                  CallbackState.PENDING)
    assert store.claim_due_callbacks(now=9.0, hold_s=30.0) == []
    [again] = store.claim_due_callbacks(now=10.0, hold_s=30.0)
    assert again.attempts == 1
    store.record_callback_delivered(job_id, now=11.0)
    done = store.get_job_callback(job_id)
    assert done is not None
    assert done.state == CallbackState.DELIVERED
    assert (done.attempts, done.delivered_at, done.last_error) == (2, 11.0, None)
    assert store.claim_due_callbacks(now=1000.0, hold_s=30.0) == []


def test_a_callback_given_up_is_never_claimed_again(store: Store) -> None:
    job_id = finished_job_with_callback(store)
    store.claim_due_callbacks(now=4.0, hold_s=30.0)
    store.record_callback_failed(job_id, error="refused", retry_at=None, now=5.0)
    gone = store.get_job_callback(job_id)
    assert gone is not None
    assert (gone.state, gone.given_up_at) == (CallbackState.FAILED, 5.0)
    assert store.claim_due_callbacks(now=1000.0, hold_s=30.0) == []


def test_a_cancelled_job_calls_back_too(store: Store) -> None:
    job = store.submit_job(replace(new_job(2), callback_url=URL), now=1.0).job
    store.cancel_job(job.id, now=2.0)
    assert [d.job_id for d in store.claim_due_callbacks(now=3.0, hold_s=30.0)] == [job.id]


def test_jobs_without_a_callback_have_none(store: Store) -> None:
    job = store.submit_job(new_job(1), now=1.0).job
    assert store.get_job_callback(job.id) is None
