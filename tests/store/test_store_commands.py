"""Command jobs in the store: they wait in their own queue, their runs' logs are kept only from
the runner holding them, a reclaimed run goes back without counting an attempt, and a runner
learns which of its commands were cancelled."""

from __future__ import annotations

import pytest

from stoker.core.accounting import RunnerClass
from stoker.core.batching import Pick
from stoker.core.commands import COMMAND_ENDPOINT, CommandSpec, command_queue
from stoker.core.model import JobStatus, RequestStatus
from stoker.errors import LeaseLost
from stoker.store import NewJob, NewRequest, RequestOutcome, Store
from tests.store.test_store_contract import MODEL, runner

QUEUE = command_queue(MODEL)


def command_job(store: Store, *, now: float = 1.0, max_attempts: int = 2) -> str:
    body = CommandSpec(("python", "train.py")).body()
    job = NewJob(team="default", tier="batch", priority=40, model=MODEL, queue=QUEUE,
                 requests=[NewRequest("command", COMMAND_ENDPOINT, body)],
                 max_attempts=max_attempts, use_cache=False)
    return store.submit_job(job, now=now).job.id


def lease_command(store: Store, runner_id: str, *, now: float) -> tuple[str, str]:
    got = store.lease_batch(runner_id, QUEUE, [Pick("batch", "default", 1)], ttl_s=10.0,
                            now=now)
    assert got is not None
    lease, [request] = got
    return lease.id, request.id


def test_a_command_waits_in_its_own_queue_as_a_job_of_its_model(store: Store) -> None:
    job_id = command_job(store)
    assert store.queue_depth() == {(QUEUE, "batch"): 1}
    assert store.queue_groups(MODEL) == []
    assert [g.queued for g in store.queue_groups(QUEUE)] == [1]
    assert store.get_job(job_id).model == MODEL


def test_a_commands_runner_counts_as_lent_among_its_models_runners(store: Store) -> None:
    command_job(store)
    rid = runner(store)
    lease_command(store, rid, now=2.0)
    assert store.leased_tiers_by_runner(MODEL) == {rid: frozenset({"batch"})}


def test_logs_are_kept_in_order_only_from_the_runner_holding_the_command(
        store: Store) -> None:
    job_id = command_job(store)
    rid, other = runner(store), runner(store)
    lease_id, request_id = lease_command(store, rid, now=2.0)
    store.append_command_log(rid, request_id, "epoch 1\n", now=3.0)
    store.append_command_log(rid, request_id, "epoch 2\n", now=4.0)
    with pytest.raises(LeaseLost):
        store.append_command_log(other, request_id, "forged\n", now=4.5)
    store.complete(lease_id, rid, [], started_at=2.0, ended_at=5.0, now=5.0,
                   returned=[request_id])
    with pytest.raises(LeaseLost):  # the run is over: its lease no longer holds it
        store.append_command_log(rid, request_id, "late\n", now=6.0)
    log = store.command_log(job_id)
    assert [(c.lease_id, c.runner_id, c.text) for c in log] == [
        (lease_id, rid, "epoch 1\n"), (lease_id, rid, "epoch 2\n")]


def test_a_reclaimed_run_goes_back_and_the_next_run_finishes_it(store: Store) -> None:
    job_id = command_job(store, max_attempts=1)
    rid = runner(store)
    lease_id, request_id = lease_command(store, rid, now=2.0)
    store.complete(lease_id, rid, [], started_at=2.0, ended_at=5.0, now=5.0,
                   returned=[request_id])
    [row] = store.job_results(job_id)
    assert (row.status, row.attempts) == (RequestStatus.QUEUED, 0)
    lease_id, _ = lease_command(store, rid, now=6.0)
    store.complete(lease_id, rid, [RequestOutcome(request_id, text="done",
                                                  finish_reason="exited")],
                   started_at=6.0, ended_at=9.0, now=9.0)
    assert store.get_job(job_id).status == JobStatus.COMPLETED
    # Both runs are the job's: the one handed back holds no result but ran it all the same.
    assert [b.job_requests for b in store.job_batches(job_id)] == [1, 1]


def test_a_runner_hears_which_of_its_commands_were_cancelled(store: Store) -> None:
    job_id = command_job(store)
    rid = runner(store)
    lease_id, request_id = lease_command(store, rid, now=2.0)
    assert store.cancelled_leased_requests(rid) == []
    store.cancel_job(job_id, now=3.0)
    assert store.cancelled_leased_requests(rid) == [request_id]
    store.complete(lease_id, rid, [], started_at=2.0, ended_at=4.0, now=4.0)
    assert store.get_job(job_id).status == JobStatus.CANCELLED
    assert store.cancelled_leased_requests(rid) == []


def test_a_reclaimed_runs_time_is_billed_to_its_job(store: Store) -> None:
    job_id = command_job(store)
    rid = runner(store)
    lease_id, request_id = lease_command(store, rid, now=2.0)
    store.complete(lease_id, rid, [], started_at=2.0, ended_at=12.0, now=12.0,
                   returned=[request_id])
    records = store.usage_records(since=0.0, until=20.0, classes={},
                                  default_class=RunnerClass("cpu", "none", 1.0, 3600.0))
    [run] = [b for b in records.batches if b.requests]
    assert [(u.job_id, u.request_id) for u in run.requests] == [(job_id, request_id)]
    assert (run.started_at, run.ended_at) == (2.0, 12.0)
