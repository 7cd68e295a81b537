"""Store behaviour behind teams and admission: idempotency, supersede, the result cache,
admission state, usage, and the queue summary staying true."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stoker.core.admission import (
    AdmissionDecision,
    AdmissionState,
    BreakerConfig,
    TeamLoad,
    TeamQuota,
    admit,
    initial_state,
)
from stoker.core.batching import Pick
from stoker.core.model import JobStatus, RequestStatus
from stoker.errors import Conflict, RateLimited, Unprocessable
from stoker.store import NewJob, NewRequest, RequestOutcome, Store
from tests.store.test_store_contract import MODEL, lease_all, new_job, ok, runner


def team_job(team: str, n: int = 1, **extra: object) -> NewJob:
    return replace(new_job(n), team=team, **extra)  # type: ignore[arg-type]


def test_idempotency_key_returns_the_existing_job(store: Store) -> None:
    first = store.submit_job(team_job("a", 2, idempotency_key="repo@abc:smoke",
                                      fingerprint="f1"), now=1.0)
    with pytest.raises(Conflict, match="different request"):
        store.submit_job(team_job("a", 5, idempotency_key="repo@abc:smoke", fingerprint="f2"),
                         now=2.0)
    again = store.submit_job(team_job("a", 5, idempotency_key="repo@abc:smoke",
                                      fingerprint="f1"), now=2.0)
    assert first.created
    assert not again.created
    assert again.job.id == first.job.id
    assert again.job.counts.total == 2
    other_team = store.submit_job(team_job("b", 1, idempotency_key="repo@abc:smoke"), now=3.0)
    assert other_team.created


def test_concurrency_group_supersedes_older_jobs(store: Store) -> None:
    old = store.submit_job(team_job("a", 4, concurrency_group="pr-7"), now=1.0).job
    rid = runner(store)
    store.lease_batch(rid, MODEL, [Pick("batch", "a", 1)], ttl_s=10, now=1.5)
    keep = store.submit_job(team_job("a", 1, concurrency_group="pr-7"), now=2.0)
    assert keep.superseded == ()
    new = store.submit_job(team_job("a", 2, concurrency_group="pr-7", cancel_in_progress=True),
                           now=3.0)
    assert set(new.superseded) == {old.id, keep.job.id}
    cancelled = store.get_job(old.id)
    assert cancelled.status == JobStatus.CANCELLING  # one request is still running
    assert cancelled.superseded_by == new.job.id
    assert cancelled.counts.cancelled == 3
    assert store.get_job(keep.job.id).status == JobStatus.CANCELLED
    assert store.get_job(new.job.id).counts.queued == 2


def cached_job(team: str, key: str, *, use_cache: bool = True) -> NewJob:
    req = NewRequest("c0", "/v1/completions", {"prompt": "x", "temperature": 0}, cache_key=key)
    return replace(new_job(1), team=team, requests=[req], use_cache=use_cache)


def test_result_cache_answers_a_repeat_without_a_runner(store: Store) -> None:
    first = store.submit_job(cached_job("a", "k1"), now=1.0).job
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(ids[0], "the answer")], started_at=2, ended_at=3, now=3)
    repeat = store.submit_job(cached_job("b", "k1"), now=4.0).job
    assert repeat.status == JobStatus.COMPLETED
    (row,) = store.job_results(repeat.id)
    assert (row.status, row.text, row.cached) == (RequestStatus.SUCCEEDED, "the answer", True)
    assert store.counter("cache_hits") == 1
    assert store.queue_groups(MODEL) == []
    assert store.job_results(first.id)[0].cached is False


def test_the_stop_string_and_logprobs_of_a_text_are_kept_and_cached(store: Store) -> None:
    first = store.submit_job(cached_job("a", "k-stop"), now=1.0).job
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    logprobs = [["Q", -0.5, [["Q", -0.5], ["A", -1.25]]], ["é", -2.0, []]]
    store.complete(lease_id, rid, [RequestOutcome(ids[0], text="Qé", finish_reason="stop",
                                                  prompt_tokens=1, completion_tokens=2,
                                                  stop_sequence="\nA:", logprobs=logprobs)],
                   started_at=2, ended_at=3, now=3)
    (first_row,) = store.job_results(first.id)
    assert (first_row.stop_sequence, first_row.logprobs) == ("\nA:", logprobs)
    repeat = store.submit_job(cached_job("b", "k-stop"), now=4.0).job
    (row,) = store.job_results(repeat.id)
    assert (row.cached, row.stop_sequence, row.logprobs) == (True, "\nA:", logprobs)
    assert [(r.stop_sequence, r.logprobs) for r in store.iter_job_results(repeat.id)] == [
        ("\nA:", logprobs)]


def test_the_tool_calls_of_an_answer_are_kept_and_cached(store: Store) -> None:
    first = store.submit_job(cached_job("a", "k-tools"), now=1.0).job
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    calls = [{"id": "c1", "type": "function",
              "function": {"name": "now", "arguments": '{"tz": "UTC"}'}}]
    store.complete(lease_id, rid, [RequestOutcome(ids[0], text="", finish_reason="tool_calls",
                                                  prompt_tokens=1, completion_tokens=2,
                                                  tool_calls=calls)],
                   started_at=2, ended_at=3, now=3)
    assert store.job_results(first.id)[0].tool_calls == calls
    repeat = store.submit_job(cached_job("b", "k-tools"), now=4.0).job
    (row,) = store.job_results(repeat.id)
    assert (row.cached, row.finish_reason, row.tool_calls) == (True, "tool_calls", calls)
    assert [r.tool_calls for r in store.iter_job_results(repeat.id)] == [calls]
    assert [r.tool_calls for r in store.iter_job_results(first.id)] == [calls]


def test_a_job_may_opt_out_of_the_cache(store: Store) -> None:
    store.submit_job(cached_job("a", "k2"), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(ids[0])], started_at=2, ended_at=3, now=3)
    fresh = store.submit_job(cached_job("a", "k2", use_cache=False), now=4.0).job
    assert fresh.counts.queued == 1
    assert store.counter("cache_hits") == 0


def test_failed_results_are_not_cached(store: Store) -> None:
    store.submit_job(cached_job("a", "k3"), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [RequestOutcome(ids[0], finish_reason="error", error="bad")],
                   started_at=2, ended_at=3, now=3)
    assert store.submit_job(cached_job("a", "k3"), now=4.0).job.counts.queued == 1


def checker(quota: TeamQuota, breaker: BreakerConfig | None, requests: int, now: float
            ) -> object:
    def check(load: TeamLoad, state: AdmissionState | None
              ) -> tuple[AdmissionDecision, AdmissionState]:
        return admit(requests, load, state or initial_state(quota, now=now), quota, breaker,
                     team="a", now=now)
    return check


def test_refused_submission_stores_nothing_but_keeps_breaker_state(store: Store) -> None:
    breaker = BreakerConfig(max_submissions=1, window_s=60, cooldown_s=30)
    store.submit_job(team_job("a"), now=1.0,
                     admission=checker(TeamQuota(), breaker, 1, 1.0))  # type: ignore[arg-type]
    with pytest.raises(RateLimited, match="paused") as tripped:
        store.submit_job(team_job("a"), now=2.0,
                         admission=checker(TeamQuota(), breaker, 1, 2.0))  # type: ignore[arg-type]
    assert tripped.value.retry_after_s == 30
    with pytest.raises(RateLimited):
        store.submit_job(team_job("a"), now=20.0,
                         admission=checker(TeamQuota(), breaker, 1, 20.0))  # type: ignore[arg-type]
    assert len(store.list_jobs(limit=10)) == 1


def test_team_standing_is_what_admission_reads_without_deciding(store: Store) -> None:
    assert store.team_standing("a", now=1.0) == (TeamLoad(0, 0), None)
    quota = TeamQuota(requests_per_minute=60)
    store.submit_job(team_job("a", 3), now=1.0,
                     admission=checker(quota, None, 3, 1.0))  # type: ignore[arg-type]
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(ids[0])], started_at=2, ended_at=3, now=3)
    load, state = store.team_standing("a", now=4.0)
    assert load.queued == 2  # one answered; the two the report left out are queued again
    assert load.tokens_today == 5  # ok()'s completion tokens
    assert state is not None
    assert (state.bucket, state.bucket_at) == (57.0, 1.0)
    assert store.team_standing("b", now=4.0) == (TeamLoad(0, 0), None)


def test_queued_quota_counts_what_the_team_has_queued(store: Store) -> None:
    quota = TeamQuota(max_queued_requests=5)
    store.submit_job(team_job("a", 4), now=1.0, admission=checker(quota, None, 4, 1.0))  # type: ignore[arg-type]
    with pytest.raises(RateLimited, match="max_queued_requests"):
        store.submit_job(team_job("a", 2), now=2.0, admission=checker(quota, None, 2, 2.0))  # type: ignore[arg-type]
    with pytest.raises(Unprocessable):
        store.submit_job(team_job("a", 6), now=2.0, admission=checker(quota, None, 6, 2.0))  # type: ignore[arg-type]
    store.submit_job(team_job("b", 5), now=2.0, admission=checker(quota, None, 5, 2.0))  # type: ignore[arg-type]


def test_daily_tokens_are_counted_per_team(store: Store) -> None:
    store.submit_job(team_job("a", 2), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=2, ended_at=3, now=3)
    quota = TeamQuota(tokens_per_day=10)
    with pytest.raises(RateLimited, match="tokens_per_day"):
        store.submit_job(team_job("a"), now=4.0, admission=checker(quota, None, 1, 4.0))  # type: ignore[arg-type]
    next_day = 86_400.0 + 5
    store.submit_job(team_job("a"), now=next_day, admission=checker(quota, None, 1, next_day))  # type: ignore[arg-type]


def test_daily_tokens_read_the_same_before_and_after_upkeep(store: Store) -> None:
    # PostgreSQL appends each completion's tokens and the reaper folds them in; a quota check
    # must see every token either way.
    seen: list[int] = []

    def spy(load: TeamLoad, state: AdmissionState | None
            ) -> tuple[AdmissionDecision, AdmissionState]:
        seen.append(load.tokens_today)
        return admit(1, load, state or initial_state(TeamQuota(), now=9.0), TeamQuota(), None,
                     team="a", now=9.0)

    store.submit_job(team_job("a", 3), now=1.0)
    rid = runner(store)
    for now in (2.0, 4.0):
        lease_id, ids = lease_all(store, rid, now=now, limit=2)
        store.complete(lease_id, rid, [ok(i) for i in ids], started_at=now, ended_at=now + 1,
                       now=now + 1)
    store.submit_job(team_job("a"), now=9.0, admission=spy)
    store.expire_leases(now=9.5)
    store.submit_job(team_job("a"), now=9.0, admission=spy)
    assert seen == [15, 15]


ops = st.lists(st.tuples(st.sampled_from(["submit", "lease", "expire", "cancel", "complete"]),
                         st.sampled_from(["a", "b"]), st.integers(1, 5)), max_size=25)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_queue_summary_always_matches_the_queue(store: Store, steps: list[tuple[str, str, int]]
                                                ) -> None:
    rid = runner(store)
    now = store.list_runners()[0].registered_at + 1_000_000.0  # past anything earlier examples left
    leases: list[tuple[str, list[str]]] = []
    jobs: list[str] = []
    for op, team, n in steps:
        now += 1.0
        if op == "submit":
            jobs.append(store.submit_job(team_job(team, n), now=now).job.id)
        elif op == "lease":
            got = store.lease_batch(rid, MODEL, [Pick("batch", team, n)], ttl_s=2, now=now)
            if got:
                leases.append((got[0].id, [r.id for r in got[1]]))
        elif op == "expire":
            store.expire_leases(now=now + 5)
        elif op == "cancel" and jobs:
            store.cancel_job(jobs[n % len(jobs)], now=now)
        elif op == "complete" and leases:
            lease_id, ids = leases.pop(0)
            store.complete(lease_id, rid, [ok(i) for i in ids], started_at=now, ended_at=now,
                           now=now)
    actual: dict[str, int] = {}
    for job in store.list_jobs(limit=10_000):
        for row in store.job_results(job.id):
            if row.status == RequestStatus.QUEUED:
                actual[job.team] = actual.get(job.team, 0) + 1
    summary = {g.team: g.queued for g in store.queue_groups(MODEL)}
    assert summary == actual


def test_a_job_past_its_deadline_expires_and_keeps_what_ran(store: Store) -> None:
    due = store.submit_job(replace(new_job(2), expires_after_s=10.0), now=0.0).job
    later = store.submit_job(replace(new_job(1), expires_after_s=100.0), now=0.5).job
    forever = store.submit_job(new_job(1), now=0.5).job
    assert (due.expires_at, forever.expires_at) == (10.0, None)
    rid = runner(store)
    got = store.lease_batch(rid, MODEL, [Pick("batch", "default", 1)], ttl_s=60, now=1.0)
    assert got is not None
    lease, (leased,) = got
    assert store.expire_jobs(now=9.0) == []
    assert store.expire_jobs(now=11.0) == [due.id]
    assert store.expire_jobs(now=12.0) == []
    job = store.get_job(due.id)
    assert job.expired
    assert job.status == JobStatus.CANCELLING  # the leased request still runs
    store.complete(lease.id, rid, [ok(leased.id)], started_at=1, ended_at=13, now=13)
    job = store.get_job(due.id)
    assert (job.status, job.counts.succeeded, job.counts.cancelled) == (
        JobStatus.CANCELLED, 1, 1)
    assert not store.get_job(later.id).expired
    assert store.expire_jobs(now=10_000.0) == [later.id]  # a job with no deadline never does
