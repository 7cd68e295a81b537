"""A runner's report is held to its lease, recorded once, and never revives what ended:
each store, and concurrent leases and admissions on each."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from stoker.core.admission import AdmissionState, TeamLoad, TeamQuota, admit, initial_state
from stoker.core.batching import Pick
from stoker.core.model import JobStatus, RequestStatus, RunnerState
from stoker.errors import Conflict, RateLimited
from stoker.store import RequestOutcome, Store
from tests.store.test_store_contract import MODEL, lease_all, new_job, ok, runner, submit


def test_a_report_naming_requests_outside_its_lease_is_refused_whole(store: Store) -> None:
    mine = submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    other = submit(store, new_job(1), now=3.0)
    (stranger,) = [r.request_id for r in store.job_results(other.id)]
    with pytest.raises(Conflict, match="did not grant"):
        store.complete(lease_id, rid, [ok(ids[0]), ok(stranger)], started_at=3, ended_at=4,
                       now=4)
    # Nothing of it was recorded: the other job's request is still queued, this lease live.
    assert store.get_job(other.id).counts.queued == 1
    assert store.get_job(mine.id).counts.running == 2
    assert store.batch_records() == []
    assert store.renew_lease(lease_id, rid, ttl_s=10, now=5.0) == 15.0


def test_requests_a_report_leaves_out_go_back_to_the_queue(store: Store) -> None:
    job = submit(store, new_job(3), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    summary = store.complete(lease_id, rid, [ok(ids[0])], started_at=2, ended_at=3, now=3)
    assert (summary.recorded, summary.requeued) == (1, 2)
    rows = {r.request_id: r for r in store.job_results(job.id)}
    assert rows[ids[0]].status == RequestStatus.SUCCEEDED
    assert {rows[i].status for i in ids[1:]} == {RequestStatus.QUEUED}
    assert "left out" in (rows[ids[1]].error or "")
    assert store.get_runner(rid).state == RunnerState.IDLE
    # They run again and the job finishes.
    again, rest = lease_all(store, rid, now=4.0)
    assert sorted(rest) == sorted(ids[1:])
    store.complete(again, rid, [ok(i) for i in rest], started_at=4, ended_at=5, now=5)
    assert store.get_job(job.id).status == JobStatus.COMPLETED


def test_a_left_out_request_out_of_attempts_fails(store: Store) -> None:
    job = submit(store, new_job(2, max_attempts=1), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    summary = store.complete(lease_id, rid, [ok(ids[0])], started_at=2, ended_at=3, now=3)
    assert summary.failed == 1
    done = store.get_job(job.id)
    assert (done.status, done.counts.failed) == (JobStatus.COMPLETED, 1)


def test_a_repeated_report_records_one_batch(store: Store) -> None:
    submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    first = store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2, ended_at=3,
                           now=3)
    again = store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2, ended_at=3,
                           now=3.5)
    assert (first.recorded, again.recorded, again.duplicates) == (2, 0, 2)
    (batch,) = store.batch_records()
    assert batch.completion_tokens == 10
    assert store.counter("duplicate_results") == 2


def test_a_late_report_after_expiry_records_where_no_result_exists(store: Store) -> None:
    job = submit(store, new_job(2), now=1.0)
    slow = runner(store)
    lease_id, ids = lease_all(store, slow, now=2.0, ttl_s=1)
    store.expire_leases(now=4.0)
    summary = store.complete(lease_id, slow, [ok(ids[0], "late")], started_at=2, ended_at=5,
                             now=5)
    assert (summary.recorded, summary.requeued) == (1, 0)
    rows = {r.request_id: r for r in store.job_results(job.id)}
    assert (rows[ids[0]].status, rows[ids[0]].text) == (RequestStatus.SUCCEEDED, "late")
    assert rows[ids[1]].status == RequestStatus.QUEUED  # requeued at expiry, still once


def test_a_request_that_failed_takes_no_late_result(store: Store) -> None:
    job = submit(store, new_job(1, max_attempts=1), now=1.0)
    slow = runner(store)
    lease_id, ids = lease_all(store, slow, now=2.0, ttl_s=1)
    store.expire_leases(now=4.0)
    summary = store.complete(lease_id, slow, [ok(ids[0], "late")], started_at=2, ended_at=5,
                             now=5)
    assert (summary.recorded, summary.duplicates) == (0, 1)
    (row,) = store.job_results(job.id)
    assert (row.status, row.text) == (RequestStatus.FAILED, None)
    assert "lease expired" in (row.error or "")


@pytest.mark.parametrize("how", ["expiry", "retryable", "runner_lost"])
def test_a_cancelled_job_is_never_requeued(store: Store, how: str) -> None:
    job = submit(store, new_job(2), now=1.0)
    rid = runner(store, now=1.0)
    lease_id, ids = lease_all(store, rid, now=2.0, ttl_s=5)
    assert store.cancel_job(job.id, now=3.0).status == JobStatus.CANCELLING
    if how == "expiry":
        store.expire_leases(now=8.0)
    elif how == "retryable":
        store.complete(lease_id, rid, [RequestOutcome(i, error="oom", retryable=True)
                                       for i in ids], started_at=2, ended_at=4, now=4)
    else:
        store.stop_lost_runners(timeout_s=1, now=4.0)
    final = store.get_job(job.id)
    assert (final.status, final.counts.cancelled, final.counts.queued) == (
        JobStatus.CANCELLED, 2, 0)
    assert store.queue_depth() == {}
    assert store.queue_groups(MODEL) == []


def test_a_superseded_job_is_never_requeued(store: Store) -> None:
    old = store.submit_job(replace(new_job(2), concurrency_group="pr-1"), now=1.0).job
    rid = runner(store)
    lease_all(store, rid, now=2.0, ttl_s=1)
    store.submit_job(replace(new_job(1), concurrency_group="pr-1", cancel_in_progress=True),
                     now=2.5)
    store.expire_leases(now=4.0)
    assert store.get_job(old.id).status == JobStatus.CANCELLED
    assert store.queue_depth() == {(MODEL, "batch"): 1}  # the new job's request only


def test_concurrent_leases_never_share_a_request(store: Store) -> None:
    submit(store, new_job(60), now=1.0)
    runners = [runner(store) for _ in range(6)]
    start = threading.Barrier(len(runners))

    def take(rid: str) -> list[str]:
        start.wait(timeout=10)
        taken: list[str] = []
        while (got := store.lease_batch(rid, MODEL, [Pick("batch", "default", 4)], ttl_s=30,
                                        now=2.0)) is not None:
            taken += [r.id for r in got[1]]
            store.complete(got[0].id, rid, [ok(r.id) for r in got[1]], started_at=2,
                           ended_at=3, now=3)
        return taken

    with ThreadPoolExecutor(len(runners)) as pool:
        taken = [rid for batch in pool.map(take, runners) for rid in batch]
    assert len(taken) == len(set(taken)) == 60
    assert store.counter("duplicate_results") == 0


def test_concurrent_submissions_hold_the_queued_quota(store: Store) -> None:
    quota = TeamQuota(max_queued_requests=8)

    def check(load: TeamLoad, state: AdmissionState | None
              ) -> tuple[object, AdmissionState]:
        return admit(2, load, state or initial_state(quota, now=1.0), quota, None, team="a",
                     now=1.0)

    start = threading.Barrier(8)

    def submit_one(_: int) -> bool:
        start.wait(timeout=10)
        try:
            store.submit_job(replace(new_job(2), team="a"), now=1.0,
                             admission=check)  # type: ignore[arg-type]
        except RateLimited:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        admitted = sum(pool.map(submit_one, range(8)))
    assert admitted == 4
    assert sum(store.queue_depth().values()) == 8
