"""A job bigger than one insert statement is staged, admitted, then moved into the queue a
page per transaction: it is still all or nothing to its client, visible whole once admitted,
and a submission that stopped half way is finished or dropped. Each store."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from stoker.core.admission import AdmissionState, Refuse, TeamLoad
from stoker.core.batching import Pick
from stoker.core.model import JobStatus, RequestStatus
from stoker.errors import Conflict, Unprocessable
from stoker.store import NewRequest, Store
from stoker.store.job_rows import ROWS_PER_STATEMENT
from tests.store.test_store_contract import MODEL, lease_all, new_job, ok, runner, submit

BIG = 2 * ROWS_PER_STATEMENT + 7  # three pages


def staged(store: Store) -> list[Any]:
    """The staged pages' jobs (white box: what a client never sees)."""
    return list(store._all("staged_jobs"))  # type: ignore[attr-defined]


def crash_after_admission(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault: the process dies between admitting the job and moving its pages."""
    monkeypatch.setattr(store, "_move_staged", lambda job_id: None)


def test_a_big_job_is_moved_whole_and_nothing_stays_staged(store: Store) -> None:
    job = submit(store, new_job(BIG), now=1.0)
    assert (job.status, job.counts.queued, job.counts.total) == (JobStatus.QUEUED, BIG, BIG)
    assert store.queue_depth() == {(MODEL, "batch"): BIG}
    assert [r.index for r in store.iter_job_results(job.id)] == list(range(BIG))
    assert staged(store) == []


def test_a_refused_big_job_leaves_nothing(store: Store) -> None:
    def refuse(load: TeamLoad, state: AdmissionState | None) -> tuple[Refuse, AdmissionState]:
        return (Refuse("max_queued", "over quota", 0.0, permanent=True),
                AdmissionState(0.0, 0.0, 0.0, 0, 0.0))

    with pytest.raises(Unprocessable, match="over quota"):
        store.submit_job(new_job(BIG), now=1.0, admission=refuse)
    assert store.list_jobs(limit=10) == []
    assert staged(store) == []


def test_a_big_job_with_a_repeated_custom_id_on_a_late_page_leaves_nothing(
        store: Store) -> None:
    job = new_job(BIG)
    requests = [*job.requests, NewRequest("c5", "/v1/completions", {"prompt": "again"})]
    with pytest.raises(Conflict, match="c5"):
        store.submit_job(replace(job, requests=requests), now=1.0)
    assert store.list_jobs(limit=10) == []
    assert staged(store) == []


def test_an_admitted_job_left_half_moved_counts_whole_and_is_resumed(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_after_admission(store, monkeypatch)
    job = submit(store, new_job(BIG), now=1.0)
    monkeypatch.undo()
    # Its staged rows count as queued and keep it open; none can be leased yet.
    assert (job.status, job.counts.queued) == (JobStatus.QUEUED, BIG)
    assert store.queue_groups(MODEL) == []
    assert store.resume_staged_jobs(now=10.0) == []  # not stale yet: a mover may be at work
    assert store.resume_staged_jobs(now=40.0) == [job.id]
    assert store.get_job(job.id).counts.queued == BIG
    assert [r.custom_id for r in store.iter_job_results(job.id)] == \
        [f"c{i}" for i in range(BIG)]
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=41.0, limit=3)
    store.complete(lease_id, rid, [ok(i) for i in ids], started_at=41, ended_at=42, now=42)
    assert store.get_job(job.id).counts.succeeded == 3
    assert staged(store) == []


def test_a_job_cancelled_before_its_pages_move_gets_them_cancelled(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    crash_after_admission(store, monkeypatch)
    job = submit(store, new_job(BIG), now=1.0)
    monkeypatch.undo()
    assert store.cancel_job(job.id, now=2.0).finished_at is None  # pages still staged
    store.resume_staged_jobs(now=40.0)
    done = store.get_job(job.id)
    assert (done.status, done.counts.cancelled, done.counts.queued) == \
        (JobStatus.CANCELLED, BIG, 0)
    assert store.queue_groups(MODEL) == []


def test_a_submission_never_admitted_is_dropped_once_stale(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def die(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt  # stands for the process dying: its cleanup never runs

    monkeypatch.setattr(store, "_admit_job", die)
    monkeypatch.setattr(store, "_drop_staged", lambda job_id: None)
    with pytest.raises(KeyboardInterrupt):
        submit(store, new_job(BIG), now=1.0)
    monkeypatch.undo()
    assert len(staged(store)) == 1
    assert store.resume_staged_jobs(now=100.0) == []
    assert len(staged(store)) == 1  # a slow upload may still be admitted
    store.resume_staged_jobs(now=1.0 + 3600)
    assert staged(store) == []
    assert store.list_jobs(limit=10) == []


def test_a_big_job_takes_cached_answers_page_by_page(store: Store) -> None:
    def keyed(job_requests: Any) -> list[NewRequest]:
        return [replace(r, cache_key=f"k{r.custom_id}") for r in job_requests]

    first = new_job(3)
    store.submit_job(replace(first, requests=keyed(first.requests)), now=1.0)
    rid = runner(store)
    lease_id, ids = lease_all(store, rid, now=2.0)
    store.complete(lease_id, rid, [ok(i, "known") for i in ids], started_at=2, ended_at=3, now=3)
    big = new_job(BIG)
    job = submit(store, replace(big, requests=keyed(big.requests)), now=4.0)
    assert (job.counts.succeeded, job.counts.queued) == (3, BIG - 3)
    assert store.counter("cache_hits") == 3
    rows = list(store.iter_job_results(job.id))
    assert [(r.status, r.text, r.cached) for r in rows[:3]] == \
        [(RequestStatus.SUCCEEDED, "known", True)] * 3


def test_an_upload_kept_as_json_text_is_stored_as_sent(store: Store) -> None:
    """Its rows are made from the text, no body parsed: the same bodies, ids and order."""
    from stoker.api.jsonl_upload import validate_upload

    bodies = [{"model": MODEL, "prompt": f"p\u2028{i} \"q\" \\ é", "max_tokens": i % 7 + 1}
              for i in range(BIG)]
    data = bytearray("".join(
        json.dumps({"custom_id": f"c{i}", "method": "POST", "url": "/v1/completions",
                    "body": b}, ensure_ascii=False) + "\n" for i, b in enumerate(bodies)).encode())
    uploaded, _ = validate_upload(data, max_requests=BIG)
    job = submit(store, replace(new_job(1), requests=uploaded, use_cache=False), now=1.0)
    assert job.counts.queued == BIG
    rid = runner(store)
    picks = [Pick(g.tier, g.team, g.queued) for g in store.queue_groups(MODEL)]
    got = store.lease_batch(rid, MODEL, picks, ttl_s=10.0, now=2.0)
    assert got is not None
    leased = sorted(got[1], key=lambda r: r.index)
    assert [(r.custom_id, r.body["prompt"]) for r in leased] == \
        [(f"c{i}", b["prompt"]) for i, b in enumerate(bodies)]
