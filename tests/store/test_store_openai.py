"""The contract for OpenAI-API files and batches, on every store."""

from __future__ import annotations

import pytest

from stoker.core.batching import Pick
from stoker.core.model import JobStatus, RunnerState
from stoker.errors import Conflict, NotFound
from stoker.store import NewBatch, NewJob, NewRequest, RequestOutcome, Store

MODEL = "tiny-llama"


def batch_spec(total: int, *, invalid: int = 0, window_s: float = 86_400.0) -> NewBatch:
    bad = tuple({"custom_id": f"bad{i}", "error": {"code": "invalid", "message": "x"}}
                for i in range(invalid))
    return NewBatch(team="default", endpoint="/v1/completions", input_file_id="file_x",
                    completion_window="24h", window_s=window_s, metadata={"k": "v"},
                    total_lines=total, invalid_lines=bad)


def batch_job(n: int, spec: NewBatch) -> NewJob:
    return NewJob(team="default", tier="batch", priority=40, model=MODEL, max_attempts=3,
                  requests=[NewRequest(f"c{i}", "/v1/completions", {"prompt": "p"})
                            for i in range(n)], batch=spec)


def test_files_round_trip_and_delete(store: Store) -> None:
    content = b'{"a": 1}\n\x00\xff binary is kept as is\n'
    made = store.create_file(team="t", purpose="batch", filename="in.jsonl", content=content,
                             now=5.0)
    assert store.get_file(made.id) == made
    assert made.bytes == len(content)
    assert store.file_content(made.id) == content
    store.delete_file(made.id, now=6.0)
    with pytest.raises(NotFound):
        store.get_file(made.id)
    with pytest.raises(NotFound):
        store.file_content(made.id)
    with pytest.raises(NotFound):
        store.delete_file(made.id, now=7.0)


def test_files_list_newest_first_by_team_with_cursor(store: Store) -> None:
    ids = [store.create_file(team="t", purpose="batch", filename=f"{i}", content=b"x",
                             now=float(i)).id for i in range(5)]
    store.create_file(team="other", purpose="batch", filename="o", content=b"x", now=9.0)
    store.create_file(team="t", purpose="fine-tune", filename="f", content=b"x", now=10.0)
    first = store.list_files(team="t", purpose="batch", after=None, limit=2)
    assert [f.id for f in first] == [ids[4], ids[3]]
    rest = store.list_files(team="t", purpose="batch", after=first[-1].id, limit=10)
    assert [f.id for f in rest] == [ids[2], ids[1], ids[0]]
    assert len(store.list_files(team="t", purpose=None, after=None, limit=10)) == 6


def test_batch_is_stored_with_its_job(store: Store) -> None:
    sub = store.submit_job(batch_job(3, batch_spec(4, invalid=1)), now=100.0)
    assert sub.batch_id is not None
    batch = store.get_openai_batch(sub.batch_id)
    assert batch.job_id == sub.job.id
    assert batch.expires_at == 100.0 + 86_400.0
    assert batch.total_lines == 4
    assert batch.invalid_lines[0]["custom_id"] == "bad0"
    assert batch.metadata == {"k": "v"}
    assert batch.errors is None
    assert batch.failed_at is None


def test_failed_batch_has_no_job(store: Store) -> None:
    batch = store.record_failed_batch(batch_spec(2, invalid=2),
                                      [{"code": "model_not_found", "message": "m"}], now=3.0)
    assert batch.job_id is None
    assert batch.failed_at == 3.0
    assert batch.errors == ({"code": "model_not_found", "message": "m"},)
    with pytest.raises(Conflict):
        store.cancel_openai_batch(batch.id, now=4.0)


def test_batches_list_by_team_with_cursor(store: Store) -> None:
    ids = [store.submit_job(batch_job(1, batch_spec(1)), now=float(i)).batch_id
           for i in range(4)]
    page = store.list_openai_batches(team="default", after=None, limit=3)
    assert [b.id for b in page] == [ids[3], ids[2], ids[1]]
    assert [b.id for b in store.list_openai_batches(team="default", after=ids[1],
                                                    limit=3)] == [ids[0]]
    assert store.list_openai_batches(team="nobody", after=None, limit=3) == []


def test_cancel_batch_cancels_its_queued_requests(store: Store) -> None:
    sub = store.submit_job(batch_job(3, batch_spec(3)), now=1.0)
    assert sub.batch_id is not None
    batch = store.cancel_openai_batch(sub.batch_id, now=2.0)
    assert batch.cancelling_at == 2.0
    job = store.get_job(sub.job.id)
    assert job.status == JobStatus.CANCELLED
    assert job.counts.cancelled == 3


def test_expiry_cancels_only_overdue_unfinished_batches(store: Store) -> None:
    due = store.submit_job(batch_job(2, batch_spec(2, window_s=10.0)), now=0.0)
    later = store.submit_job(batch_job(2, batch_spec(2, window_s=100.0)), now=0.0)
    assert store.expire_openai_batches(now=5.0) == []
    assert store.expire_openai_batches(now=11.0) == [due.batch_id]
    assert store.expire_openai_batches(now=12.0) == []
    assert due.batch_id is not None
    assert later.batch_id is not None
    assert store.get_openai_batch(due.batch_id).expired_at == 11.0
    assert store.get_job(due.job.id).counts.cancelled == 2
    assert store.get_openai_batch(later.batch_id).expired_at is None
    assert store.get_job(later.job.id).counts.queued == 2


def test_job_tokens_sum_recorded_results(store: Store) -> None:
    job = store.submit_job(batch_job(3, batch_spec(3)), now=1.0).job
    assert store.job_tokens(job.id) == (0, 0)
    r = store.register_runner(name="r", model=MODEL, pid=1, host="h", max_batch_size=2,
                              max_wait_ms=0, now=1.0)
    store.set_runner_state(r.id, RunnerState.IDLE, now=1.0)
    got = store.lease_batch(r.id, MODEL, [Pick("batch", "default", 2)], ttl_s=10, now=2.0)
    assert got is not None
    store.complete(got[0].id, r.id, [RequestOutcome(q.id, text="x", finish_reason="stop",
                                                    prompt_tokens=5, completion_tokens=7)
                                     for q in got[1]], started_at=2, ended_at=3, now=3.0)
    assert store.job_tokens(job.id) == (10, 14)
