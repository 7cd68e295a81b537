"""Partial reports (continuous batching): results recorded as rows finish, one batch record per
report, the lease released when its last request is reported; on every store."""

from __future__ import annotations

import pytest

from stoker.core.accounting import RunnerClass
from stoker.core.model import JobStatus, RequestStatus, RunnerState
from stoker.errors import Conflict, LeaseLost
from stoker.store import RequestOutcome, Store
from tests.store.test_store_contract import lease_all, new_job, ok, runner, submit


def test_results_are_recorded_as_rows_finish_and_the_lease_closes_with_the_last(
        store: Store) -> None:
    job = submit(store, new_job(3), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    first = store.report(lease_id, rid, [ok(ids[0], "early")], report_id="r1",
                         started_at=2.0, ended_at=2.5, now=2.5)
    assert (first.recorded, first.duplicates, first.repeated) == (1, 0, False)
    rows = {r.request_id: r for r in store.job_results(job.id)}
    assert rows[ids[0]].status == RequestStatus.SUCCEEDED
    assert rows[ids[0]].text == "early"
    assert {rows[i].status for i in ids[1:]} == {RequestStatus.LEASED}
    # The rest is still running: the lease holds and renews, the runner stays busy.
    assert store.renew_lease(lease_id, rid, ttl_s=10, now=3.0) == 13.0
    assert store.get_runner(rid).state == RunnerState.BUSY
    store.report(lease_id, rid, [ok(i) for i in ids[1:]], report_id="r2",
                 started_at=2.5, ended_at=4.0, now=4.0)
    assert store.get_job(job.id).status == JobStatus.COMPLETED
    assert store.get_runner(rid).state == RunnerState.IDLE
    with pytest.raises(LeaseLost):
        store.renew_lease(lease_id, rid, ttl_s=10, now=4.5)


def test_each_report_is_one_batch_record_and_the_same_report_again_is_a_repeat(
        store: Store) -> None:
    submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.report(lease_id, rid, [ok(ids[0])], report_id="a", started_at=2.0, ended_at=3.0,
                 now=3.0)
    again = store.report(lease_id, rid, [ok(ids[0], "twice")], report_id="a",
                         started_at=2.0, ended_at=3.0, now=3.1)
    assert again.repeated
    assert again.recorded == 0
    store.report(lease_id, rid, [ok(ids[1])], report_id="b", started_at=3.0, ended_at=3.5,
                 now=3.5)
    batches = store.batch_records()
    assert [(b.started_at, b.ended_at) for b in batches] == [(2.0, 3.0), (3.0, 3.5)]
    assert [list(b.request_ids) for b in batches] == [[ids[0]], [ids[1]]]


def test_a_runner_tops_up_with_a_second_lease_while_the_first_runs(store: Store) -> None:
    submit(store, new_job(2), now=1.0)
    rid = runner(store)
    first, (a, b) = lease_all(store, rid, now=2.0)
    later = submit(store, new_job(1), now=2.5)
    second, (c,) = lease_all(store, rid, now=3.0)
    assert second != first
    store.report(first, rid, [ok(a), ok(b)], report_id="x", started_at=2.0, ended_at=3.5,
                 now=3.5)
    # One lease is still open: the runner is still busy.
    assert store.get_runner(rid).state == RunnerState.BUSY
    store.report(second, rid, [ok(c)], report_id="y", started_at=3.5, ended_at=4.0, now=4.0)
    assert store.get_runner(rid).state == RunnerState.IDLE
    assert store.get_job(later.id).status == JobStatus.COMPLETED


def test_a_partial_report_refuses_retryable_failures_and_foreign_requests(
        store: Store) -> None:
    submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    retry = RequestOutcome(ids[0], error="backend failed", retryable=True)
    with pytest.raises(Conflict, match="retryable"):
        store.report(lease_id, rid, [retry], report_id="r", started_at=2, ended_at=3, now=3)
    with pytest.raises(Conflict, match="did not grant"):
        store.report(lease_id, rid, [ok("req_nope")], report_id="r", started_at=2,
                     ended_at=3, now=3)
    other = runner(store)
    with pytest.raises(LeaseLost):
        store.report(lease_id, other, [ok(ids[0])], report_id="r", started_at=2, ended_at=3,
                     now=3)
    assert store.batch_records() == []


def test_after_a_partial_report_expiry_requeues_only_what_was_still_running(
        store: Store) -> None:
    job = submit(store, new_job(3), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0, ttl_s=5)
    store.report(lease_id, rid, [ok(ids[0])], report_id="r", started_at=2, ended_at=3, now=3)
    assert store.expire_leases(now=8.0) == ["tiny-llama"]
    statuses = {r.request_id: r.status for r in store.job_results(job.id)}
    assert statuses[ids[0]] == RequestStatus.SUCCEEDED
    assert {statuses[i] for i in ids[1:]} == {RequestStatus.QUEUED}


def test_a_report_s_batch_size_is_the_rows_decoded_together(store: Store) -> None:
    submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.report(lease_id, rid, [ok(ids[0])], report_id="a", started_at=2.0, ended_at=3.0,
                 now=3.0, rows=12)
    store.report(lease_id, rid, [ok(ids[1])], report_id="b", started_at=3.0, ended_at=3.5,
                 now=3.5)
    cpu = RunnerClass("cpu", "CPU", 16, 0.36)
    records = store.usage_records(since=0.0, until=10.0, classes={"cpu": cpu},
                                  default_class=cpu)
    sizes = [b.size for b in records.batches]
    # The waste report reads this as the batch's fill: the loop's rows, not the report's.
    assert sorted(sizes) == [1, 12]


def test_rows_handed_back_for_online_work_queue_again_and_the_lease_closes_when_none_run(
        store: Store) -> None:
    job = submit(store, new_job(3, max_attempts=1), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    back = store.report(lease_id, rid, [], report_id="r1", started_at=3.0, ended_at=3.0,
                        now=3.0, returned=ids[:2])
    assert back.requeued == 2
    rows = {r.request_id: r for r in store.job_results(job.id)}
    # max_attempts is 1: the hand-back costs no attempt, so they may run again.
    assert [(rows[i].status, rows[i].attempts) for i in ids[:2]] == [(RequestStatus.QUEUED, 0)] * 2
    assert store.get_runner(rid).state == RunnerState.BUSY  # the third row still runs
    store.report(lease_id, rid, [], report_id="r2", started_at=4.0, ended_at=4.0, now=4.0,
                 returned=ids[2:])
    assert store.get_runner(rid).state == RunnerState.IDLE
    with pytest.raises(LeaseLost):
        store.renew_lease(lease_id, rid, ttl_s=10, now=4.5)
    assert store.get_job(job.id).counts.queued == 3


def test_a_report_may_hand_back_only_rows_its_lease_granted(store: Store) -> None:
    submit(store, new_job(1), now=1.0)
    rid = runner(store)
    lease_id, [held] = lease_all(store, rid, now=2.0)
    with pytest.raises(Conflict):
        store.report(lease_id, rid, [], report_id="r1", started_at=3.0, ended_at=3.0,
                     now=3.0, returned=[held, "req_someone_elses"])
    assert [r.status for r in store.job_results(store.list_jobs(limit=1)[0].id)] == [
        RequestStatus.LEASED]
