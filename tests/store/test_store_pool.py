"""The pool's records in each store: one controller per model pool at a time, what the pool
measured of itself, and its decisions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from stoker.core.model import RequestStatus, RunnerState
from stoker.store import PoolDecisionRecord, Store
from tests.store.test_store_contract import MODEL, lease_all, new_job, ok, runner, submit


def test_one_controller_holds_a_model_pool_until_its_lease_expires(store: Store) -> None:
    assert store.claim_pool_controller(MODEL, "a", ttl_s=10, now=0.0)
    assert not store.claim_pool_controller(MODEL, "b", ttl_s=10, now=5.0)
    assert store.claim_pool_controller("other-model", "b", ttl_s=10, now=5.0)
    assert store.claim_pool_controller(MODEL, "a", ttl_s=10, now=8.0)  # renewed to 18
    assert not store.claim_pool_controller(MODEL, "b", ttl_s=10, now=15.0)
    assert store.claim_pool_controller(MODEL, "b", ttl_s=10, now=18.0)  # a went quiet
    assert not store.claim_pool_controller(MODEL, "a", ttl_s=10, now=19.0)
    store.release_pool_controller(MODEL, "b")
    assert store.claim_pool_controller(MODEL, "a", ttl_s=10, now=20.0)


def test_replicas_claiming_at_once_get_one_controller(store: Store) -> None:
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda h: store.claim_pool_controller(MODEL, f"r{h}", ttl_s=10,
                                                                  now=1.0), range(8)))
    assert won.count(True) == 1


def test_the_pool_measures_throughput_and_cold_start_from_its_records(store: Store) -> None:
    nothing = store.pool_measurements(MODEL)
    assert (nothing.tokens_per_runner_s, nothing.cold_start_s) == (None, None)
    # A runner registers at 0 and is warm at 12: a 12 s cold start.
    r = store.register_runner(name="r", model=MODEL, pid=1, host="h", max_batch_size=16,
                              max_wait_ms=10, now=0.0)
    store.set_runner_state(r.id, RunnerState.IDLE, now=12.0)
    # One that never got warm is no measure.
    lost = store.register_runner(name="x", model=MODEL, pid=2, host="h", max_batch_size=16,
                                 max_wait_ms=10, now=0.0)
    store.set_runner_state(lost.id, RunnerState.STOPPED, now=90.0)
    submit(store, new_job(4), now=13.0)
    lease_id, ids = lease_all(store, r.id, now=14.0)
    # ok() records 5 completion tokens a request: 20 tokens in 2 s busy.
    store.complete(lease_id, r.id, [ok(i) for i in ids], started_at=14, ended_at=16, now=16)
    got = store.pool_measurements(MODEL)
    assert got.tokens_per_runner_s == 10.0
    assert got.completion_tokens_per_request == 5.0
    assert (got.cold_start_s, got.cold_starts_measured) == (12.0, 1)
    assert store.pool_measurements("other-model").tokens_per_runner_s is None


def test_a_runners_cold_start_counts_from_its_launch_not_its_registration(store: Store) -> None:
    # Launched at 0, registered at 4 (after its imports), warm at 12: a 12 s cold start.
    r = store.register_runner(name="r", model=MODEL, pid=1, host="h", max_batch_size=16,
                              max_wait_ms=10, now=4.0, launched_at=0.0)
    store.set_runner_state(r.id, RunnerState.IDLE, now=12.0)
    assert store.pool_measurements(MODEL).cold_start_s == 12.0
    (starting, _) = store.runner_intervals(r.id)
    assert (starting.state, starting.started_at, starting.ended_at) == (
        RunnerState.STARTING, 0.0, 12.0)
    # A launch time after the registration is taken as the registration.
    late = store.register_runner(name="x", model=MODEL, pid=2, host="h", max_batch_size=16,
                                 max_wait_ms=10, now=20.0, launched_at=25.0)
    assert store.runner_intervals(late.id)[0].started_at == 20.0


def test_decisions_are_kept_with_their_signals_and_counted(store: Store) -> None:
    for at, reason in [(1.0, "drain_target"), (2.0, "steady"), (3.0, "drain_target")]:
        store.record_pool_decision(PoolDecisionRecord(
            MODEL, at, "replica-1", desired=2, started=1 if reason != "steady" else 0,
            stopped=("runner_x",) if at == 2.0 else (), reason=reason,
            signals={"queued_requests": {"batch": 40}, "cold_start_s": 12.0}))
    latest = store.pool_decisions(model=MODEL, limit=2)
    assert [d.decided_at for d in latest] == [3.0, 2.0]
    assert latest[1].stopped == ("runner_x",)
    assert latest[0].signals == {"queued_requests": {"batch": 40}, "cold_start_s": 12.0}
    assert store.pool_decisions(model="other-model") == []
    assert store.pool_decision_counts() == {(MODEL, "drain_target"): 2, (MODEL, "steady"): 1}


def runner_of(store: Store, revision: str, name: str) -> str:
    r = store.register_runner(name=name, model=MODEL, pid=1, host="h", max_batch_size=16,
                              max_wait_ms=10, now=0.0, revision=revision)
    store.set_runner_state(r.id, RunnerState.IDLE, now=0.0)
    return r.id


def test_a_pinned_job_is_leased_only_by_runners_of_its_revision(store: Store) -> None:
    pinned = store.submit_job(replace(new_job(3), revision="v1"), now=1.0).job
    free = submit(store, new_job(2), now=2.0)
    big = store.submit_job(replace(new_job(4500), revision="v1"), now=3.0).job  # staged pages
    assert store.pinned_open_requests(MODEL) == {"v1": 4503}
    newer = runner_of(store, "v2", "new")
    _, got = lease_all(store, newer, now=4.0, limit=5000)
    assert sorted(got) == sorted(r.request_id for r in store.job_results(free.id))
    older = runner_of(store, "v1", "old")
    lease_id, got = lease_all(store, older, now=5.0, limit=5000)
    assert len(got) == 4503
    store.complete(lease_id, older, [ok(i) for i in got], started_at=5, ended_at=6, now=6)
    assert store.get_job(pinned.id).counts.succeeded == 3
    assert store.get_job(big.id).counts.succeeded == 4500
    assert store.pinned_open_requests(MODEL) == {}


def test_warm_runners_and_the_tiers_each_holds_leased(store: Store) -> None:
    store.submit_job(new_job(3, tier="batch"), now=1.0)
    first, second = runner(store), runner(store)
    assert store.warm_runners(MODEL) == 2
    assert store.leased_tiers_by_runner(MODEL) == {}
    lease_id, ids = lease_all(store, first, now=2.0)
    assert store.leased_tiers_by_runner(MODEL) == {first: frozenset({"batch"})}
    store.complete(lease_id, first, [], started_at=2.0, ended_at=3.0, now=3.0)
    assert store.leased_tiers_by_runner(MODEL) == {}
    store.set_runner_state(second, RunnerState.DRAINING, now=4.0)
    assert store.warm_runners(MODEL) == 1
    assert len(ids) == 3


def test_requests_handed_back_for_online_work_queue_again_without_an_attempt(
        store: Store) -> None:
    job = store.submit_job(new_job(3, tier="batch"), now=1.0).job
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    assert sorted(store.leased_requests_of_runner(rid)) == sorted((i, "batch") for i in ids)
    summary = store.complete(lease_id, rid, [ok(ids[0])], started_at=2.0, ended_at=3.0,
                             now=3.0, returned=ids[1:])
    assert (summary.recorded, summary.failed) == (1, 0)
    rows = {r.request_id: r for r in store.job_results(job.id)}
    assert [(rows[i].status, rows[i].attempts) for i in ids[1:]] == [
        (RequestStatus.QUEUED, 0), (RequestStatus.QUEUED, 0)]
    assert store.leased_requests_of_runner(rid) == []
    assert store.get_job(job.id).counts.queued == 2


def test_recent_job_times_are_the_models_newest_since_a_time(store: Store) -> None:
    first = store.submit_job(replace(new_job(1), tier="online"), now=10.0).job
    store.submit_job(replace(new_job(1), model="other-model"), now=11.0)
    store.submit_job(new_job(1), now=12.0)
    store.cancel_job(first.id, now=13.0)
    times = store.recent_job_times(MODEL, since=9.0)
    assert times == [("batch", 12.0, None), ("online", 10.0, 13.0)]
    assert store.recent_job_times(MODEL, since=11.0) == [("batch", 12.0, None)]
    assert store.recent_job_times(MODEL, since=9.0, limit=1) == [("batch", 12.0, None)]
