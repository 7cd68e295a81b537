"""The behaviour every store implementation must have."""

from __future__ import annotations

import pytest

from stoker.core.batching import Pick
from stoker.core.model import Job, JobStatus, QueueGroup, RequestStatus, RunnerState
from stoker.errors import Conflict, LeaseLost, NotFound
from stoker.store import NewJob, NewRequest, RequestOutcome, Store

MODEL = "tiny-llama"


def new_job(n: int, *, priority: int = 40, tier: str = "batch", max_attempts: int = 3,
            model: str = MODEL) -> NewJob:
    requests = [NewRequest(f"c{i}", "/v1/completions", {"prompt": f"p{i}"}) for i in range(n)]
    return NewJob(team="default", tier=tier, priority=priority, model=model, requests=requests,
                  max_attempts=max_attempts)


def submit(store: Store, job: NewJob, *, now: float) -> Job:
    return store.submit_job(job, now=now).job


def runner(store: Store, now: float = 0.0) -> str:
    r = store.register_runner(name="r", model=MODEL, pid=1, host="h", max_batch_size=16,
                              max_wait_ms=100, now=now)
    store.set_runner_state(r.id, RunnerState.IDLE, now=now)
    return r.id


def lease_all(store: Store, runner_id: str, *, now: float, ttl_s: float = 10.0,
              limit: int = 100) -> tuple[str, list[str]]:
    picks = [Pick(g.tier, g.team, min(g.queued, limit)) for g in store.queue_groups(MODEL)]
    got = store.lease_batch(runner_id, MODEL, picks, ttl_s=ttl_s, now=now)
    assert got is not None
    lease, requests = got
    return lease.id, [r.id for r in requests]


def ok(rid: str, text: str = "out") -> RequestOutcome:
    return RequestOutcome(rid, text=text, finish_reason="stop", prompt_tokens=3,
                          completion_tokens=5)


def test_submit_stores_every_request_queued(store: Store) -> None:
    job = submit(store, new_job(5), now=1.0)
    assert job.status == JobStatus.QUEUED
    assert job.counts.total == job.counts.queued == 5
    assert store.queue_depth() == {(MODEL, "batch"): 5}
    assert [r.custom_id for r in store.job_results(job.id)] == [f"c{i}" for i in range(5)]


def test_submit_is_all_or_nothing(store: Store) -> None:
    bad = NewJob(team="default", tier="batch", priority=40, model=MODEL, max_attempts=3,
                 requests=[NewRequest("same", "/v1/completions", {"prompt": "a"}),
                           NewRequest("same", "/v1/completions", {"prompt": "b"})])
    with pytest.raises(Conflict, match="same"):
        submit(store, bad, now=1.0)
    assert store.list_jobs(limit=10) == []
    assert store.queue_depth() == {}


def test_unknown_job_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.get_job("job_missing")


def test_queue_groups_summarise_the_queue(store: Store) -> None:
    submit(store, new_job(2, priority=20, tier="best_effort"), now=1.0)
    submit(store, new_job(3, priority=80, tier="smoke"), now=2.0)
    submit(store, new_job(1, priority=80, tier="smoke"), now=3.0)
    groups = sorted(store.queue_groups(MODEL), key=lambda g: g.tier)
    assert groups == [QueueGroup("best_effort", "default", 2, 1.0),
                      QueueGroup("smoke", "default", 4, 2.0)]
    assert store.queue_groups("other-model") == []


def test_lease_takes_the_oldest_of_each_pick(store: Store) -> None:
    first = submit(store, new_job(3), now=1.0)
    submit(store, new_job(3), now=2.0)
    rid = runner(store)
    got = store.lease_batch(rid, MODEL, [Pick("batch", "default", 4)], ttl_s=10, now=3.0)
    assert got is not None
    oldest = [r.request_id for r in store.job_results(first.id)]
    assert [r.id for r in got[1]][:3] == oldest
    (group,) = store.queue_groups(MODEL)
    assert (group.queued, group.head_enqueued_at) == (2, 2.0)


def test_lease_is_atomic_and_exclusive(store: Store) -> None:
    submit(store, new_job(3), now=1.0)
    a, b = runner(store), runner(store)
    first = store.lease_batch(a, MODEL, [Pick("batch", "default", 2)], ttl_s=10, now=2.0)
    assert first is not None
    second = store.lease_batch(b, MODEL, [Pick("batch", "default", 5)], ttl_s=10, now=2.0)
    assert second is not None
    assert len(second[1]) == 1
    assert not {r.id for r in first[1]} & {r.id for r in second[1]}
    assert store.lease_batch(b, MODEL, [Pick("batch", "default", 5)], ttl_s=10, now=2.0) is None
    assert all(r.attempts == 1 for r in first[1])


def test_lease_of_several_picks_is_one_grant_that_makes_the_runner_busy(store: Store) -> None:
    submit(store, new_job(2), now=1.0)
    urgent = submit(store, new_job(2, tier="smoke", priority=80), now=2.0)
    rid = runner(store, now=0.5)
    picks = [Pick("batch", "default", 1), Pick("smoke", "default", 2)]
    got = store.lease_batch(rid, MODEL, picks, ttl_s=10, now=3.0)
    assert got is not None
    lease, leased = got
    assert (lease.expires_at, len(leased)) == (13.0, 3)
    # Highest priority first, then oldest.
    assert [r.job_id for r in leased] == [urgent.id, urgent.id, leased[2].job_id]
    assert (leased[2].job_id != urgent.id, leased[2].index) == (True, 0)
    assert set(lease.request_ids) == {r.id for r in leased}
    busy = store.get_runner(rid)
    assert (busy.state, busy.leased_requests) == (RunnerState.BUSY, 3)
    spans = [(i.state, i.started_at, i.ended_at) for i in store.runner_intervals(rid)]
    assert spans[-2:] == [(RunnerState.IDLE, 0.5, 3.0), (RunnerState.BUSY, 3.0, None)]


def test_a_draining_or_stopped_runner_takes_no_new_work(store: Store) -> None:
    job = submit(store, new_job(2), now=1.0)
    rid = runner(store)
    store.set_runner_state(rid, RunnerState.DRAINING, now=2.0)
    assert store.lease_batch(rid, MODEL, [Pick("batch", "default", 2)], ttl_s=10,
                             now=3.0) is None
    store.set_runner_state(rid, RunnerState.STOPPED, now=4.0)
    assert store.lease_batch(rid, MODEL, [Pick("batch", "default", 2)], ttl_s=10,
                             now=5.0) is None
    assert store.get_job(job.id).counts.queued == 2
    assert store.get_runner(rid).state == RunnerState.STOPPED


def test_complete_records_first_result_and_counts_repeats(store: Store) -> None:
    job = submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    summary = store.complete(lease_id, rid, [ok(i, "first") for i in ids], started_at=2.0,
                             ended_at=3.0, now=3.0)
    assert (summary.recorded, summary.duplicates) == (2, 0)
    again = store.complete(lease_id, rid, [ok(i, "second") for i in ids], started_at=3.0,
                           ended_at=4.0, now=4.0)
    assert (again.recorded, again.duplicates) == (0, 2)
    assert store.counter("duplicate_results") == 2
    rows = store.job_results(job.id)
    assert {r.text for r in rows} == {"first"}
    finished = store.get_job(job.id)
    assert finished.status == JobStatus.COMPLETED
    assert finished.finished_at == 3.0


def test_complete_writes_a_batch_record(store: Store) -> None:
    submit(store, new_job(3), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2.5, ended_at=3.5, now=3.6)
    (batch,) = store.batch_records()
    assert batch.runner_id == rid
    assert batch.lease_id == lease_id
    assert set(batch.request_ids) == set(ids)
    assert (batch.started_at, batch.ended_at) == (2.5, 3.5)
    assert (batch.prompt_tokens, batch.completion_tokens) == (9, 15)


def test_job_batches_counts_the_jobs_share(store: Store) -> None:
    a = submit(store, new_job(2), now=1.0)
    b = submit(store, new_job(3), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2, ended_at=3, now=3)
    (only,) = store.job_batches(a.id)
    assert (len(only.batch.request_ids), only.job_requests) == (5, 2)
    assert store.job_batches(b.id)[0].job_requests == 3


def test_renew_extends_a_live_lease_only(store: Store) -> None:
    submit(store, new_job(1), now=1.0)
    rid = runner(store)
    lease_id, _ = lease_all(store, rid, now=2.0, ttl_s=5)
    assert store.renew_lease(lease_id, rid, ttl_s=5, now=6.0) == 11.0
    assert store.expire_leases(now=10.0) == []
    with pytest.raises(LeaseLost):
        store.renew_lease(lease_id, rid, ttl_s=5, now=12.0)


def test_expired_lease_requeues_with_attempt_raised(store: Store) -> None:
    job = submit(store, new_job(2), now=1.0)
    rid = runner(store)
    lease_all(store, rid, now=2.0, ttl_s=5)
    assert store.expire_leases(now=6.0) == []
    assert store.expire_leases(now=7.0) == [MODEL]
    rows = store.job_results(job.id)
    assert {r.status for r in rows} == {RequestStatus.QUEUED}
    assert {r.attempts for r in rows} == {1}
    assert store.get_job(job.id).counts.queued == 2
    assert store.counter("leases_expired") == 1


def test_past_max_attempts_a_request_fails_with_the_error_kept(store: Store) -> None:
    job = submit(store, new_job(1, max_attempts=2), now=1.0)
    rid = runner(store)
    for attempt in range(2):
        lease_all(store, rid, now=10.0 * attempt, ttl_s=1)
        store.expire_leases(now=10.0 * attempt + 2)
    (row,) = store.job_results(job.id)
    assert row.status == RequestStatus.FAILED
    assert row.attempts == 2
    assert row.error is not None
    assert "lease expired" in row.error
    assert store.get_job(job.id).status == JobStatus.COMPLETED


def test_late_result_after_expiry_still_counts_once(store: Store) -> None:
    job = submit(store, new_job(1), now=1.0)
    slow, fast = runner(store), runner(store)
    slow_lease, ids = lease_all(store, slow, now=2.0, ttl_s=1)
    store.expire_leases(now=4.0)
    fast_lease, again = lease_all(store, fast, now=4.0)
    assert again == ids
    store.complete(slow_lease, slow, [ok(ids[0], "slow")], started_at=2, ended_at=5, now=5)
    summary = store.complete(fast_lease, fast, [ok(ids[0], "fast")], started_at=4, ended_at=6,
                             now=6)
    assert summary.duplicates == 1
    (row,) = store.job_results(job.id)
    assert (row.status, row.text) == (RequestStatus.SUCCEEDED, "slow")


def test_retryable_error_goes_back_to_the_queue(store: Store) -> None:
    job = submit(store, new_job(1, max_attempts=2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    summary = store.complete(lease_id, rid, [RequestOutcome(ids[0], error="oom", retryable=True)],
                             started_at=2, ended_at=3, now=3)
    assert summary.requeued == 1
    assert store.get_job(job.id).counts.queued == 1
    lease_id, ids = lease_all(store, rid, now=4.0)
    summary = store.complete(lease_id, rid, [RequestOutcome(ids[0], error="oom", retryable=True)],
                             started_at=4, ended_at=5, now=5)
    assert summary.failed == 1
    (row,) = store.job_results(job.id)
    assert (row.status, row.error) == (RequestStatus.FAILED, "oom")


def test_cancel_drops_queued_keeps_results(store: Store) -> None:
    job = submit(store, new_job(4), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0, limit=2)
    cancelled = store.cancel_job(job.id, now=4.0)
    assert cancelled.status == JobStatus.CANCELLING
    assert cancelled.finished_at is None
    assert (cancelled.counts.running, cancelled.counts.cancelled) == (2, 2)
    assert store.queue_depth() == {}
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=3, ended_at=5, now=5)
    final = store.get_job(job.id)
    assert (final.status, final.counts.succeeded, final.finished_at) == (
        JobStatus.CANCELLED, 2, 5)


def test_cancelling_a_finished_job_changes_nothing(store: Store) -> None:
    job = submit(store, new_job(1), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(ids[0])], started_at=2, ended_at=3, now=3)
    assert store.cancel_job(job.id, now=4.0).status == JobStatus.COMPLETED


def test_runner_intervals_record_every_transition(store: Store) -> None:
    r = store.register_runner(name="r", model=MODEL, pid=7, host="h", max_batch_size=8,
                              max_wait_ms=10, now=1.0)
    assert r.state == RunnerState.STARTING
    store.set_runner_state(r.id, RunnerState.IDLE, now=3.0)
    store.set_runner_state(r.id, RunnerState.BUSY, now=4.0)
    store.set_runner_state(r.id, RunnerState.DRAINING, now=5.0)
    store.set_runner_state(r.id, RunnerState.STOPPED, now=6.0)
    spans = [(i.state, i.started_at, i.ended_at) for i in store.runner_intervals(r.id)]
    assert spans == [
        (RunnerState.STARTING, 1.0, 3.0), (RunnerState.IDLE, 3.0, 4.0),
        (RunnerState.BUSY, 4.0, 5.0), (RunnerState.DRAINING, 5.0, 6.0),
        (RunnerState.STOPPED, 6.0, None),
    ]
    assert store.list_runners() == []
    assert [x.id for x in store.list_runners(include_stopped=True)] == [r.id]


def test_illegal_transition_is_a_conflict(store: Store) -> None:
    rid = runner(store)
    store.set_runner_state(rid, RunnerState.STOPPED, now=2.0)
    with pytest.raises(Conflict, match="cannot go"):
        store.set_runner_state(rid, RunnerState.IDLE, now=3.0)


def test_lost_runner_is_stopped_and_its_work_requeued(store: Store) -> None:
    job = submit(store, new_job(2), now=1.0)
    rid = runner(store, now=1.0)
    lease_all(store, rid, now=2.0, ttl_s=100)
    assert store.stop_lost_runners(timeout_s=10, now=5.0) == []
    assert store.stop_lost_runners(timeout_s=10, now=12.0) == [rid]
    assert store.get_runner(rid).state == RunnerState.STOPPED
    assert store.get_job(job.id).counts.queued == 2


def test_leased_requests_count_as_batch_in_hand(store: Store) -> None:
    submit(store, new_job(3), now=1.0)
    rid = runner(store)
    lease_all(store, rid, now=2.0)
    assert store.get_runner(rid).leased_requests == 3


def test_the_queue_summary_reads_the_same_before_and_after_upkeep(store: Store) -> None:
    # PostgreSQL folds pending summary changes in when the reaper runs; reads must not see it.
    first = submit(store, new_job(5), now=1.0)
    submit(store, new_job(4, tier="smoke", priority=80), now=2.0)
    r = runner(store)
    lease_id, leased = lease_all(store, r, now=3.0, limit=3)
    store.complete(lease_id, r, [ok(rid) for rid in leased], started_at=3, ended_at=4, now=4.0)
    store.cancel_job(first.id, now=5.0)
    before = sorted(store.queue_groups(MODEL), key=lambda g: g.tier)
    depth = store.queue_depth()
    store.expire_leases(now=6.0)
    assert sorted(store.queue_groups(MODEL), key=lambda g: g.tier) == before
    assert store.queue_depth() == depth
    assert [(g.tier, g.queued, g.head_enqueued_at) for g in before] == [("smoke", 1, 2.0)]


def test_job_results_stream_page_by_page_in_order(store: Store) -> None:
    job = submit(store, new_job(23), now=1.0)
    submit(store, new_job(5), now=1.5)  # another job's rows never show up
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0, limit=7)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2, ended_at=3, now=3)
    whole = store.job_results(job.id)
    paged = list(store.iter_job_results(job.id, page=5))
    assert paged == whole
    assert [r.custom_id for r in paged] == [f"c{i}" for i in range(23)]
    assert list(store.iter_job_results(job.id, page=23)) == whole
    with pytest.raises(NotFound):
        list(store.iter_job_results("job_missing"))


def test_a_job_larger_than_one_statement_is_stored_whole_and_in_order(store: Store) -> None:
    n = 2 * 2000 + 17  # three insert statements
    job = submit(store, new_job(n), now=1.0)
    assert job.counts.queued == n
    assert store.queue_depth() == {(MODEL, "batch"): n}
    got = [(r.index, r.custom_id) for r in store.iter_job_results(job.id, page=1000)]
    assert got == [(i, f"c{i}") for i in range(n)]
