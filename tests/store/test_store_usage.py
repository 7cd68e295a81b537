"""The records cost accounting reads, on every store."""

from __future__ import annotations

from stoker.core.accounting import RunnerClass
from stoker.core.batching import Pick
from stoker.core.model import RunnerState
from stoker.store import NewJob, NewRequest, RequestOutcome, Store

MODEL = "tiny-llama"
CPU = RunnerClass("cpu", "CPU", 16, 0.36)
GPU = RunnerClass("gpu", "A10G", 24, 1.0)


def test_usage_records_cover_the_window(store: Store) -> None:
    job = store.submit_job(NewJob(team="t", tier="batch", priority=40, model=MODEL,
                                  max_attempts=3,
                                  requests=[NewRequest(f"c{i}", "/v1/completions", {"p": i})
                                            for i in range(3)]), now=10.0).job
    runner = store.register_runner(name="r", model=MODEL, pid=1, host="h", max_batch_size=8,
                                   max_wait_ms=0, now=0.0)
    store.set_runner_state(runner.id, RunnerState.IDLE, now=5.0)
    got = store.lease_batch(runner.id, MODEL, [Pick("batch", "t", 3)], ttl_s=30, now=20.0)
    assert got is not None
    lease, leased = got
    store.complete(lease.id, runner.id, [RequestOutcome(q.id, text="x", finish_reason="stop",
                                                        prompt_tokens=2, completion_tokens=4)
                                         for q in leased], started_at=20.5, ended_at=24.0,
                   now=25.0)
    records = store.usage_records(since=0.0, until=100.0, classes={MODEL: GPU},
                                  default_class=CPU)
    (facts,) = records.runners
    assert facts.runner_class == GPU
    assert [(s.state, s.started_at, s.ended_at) for s in records.spans] == [
        (RunnerState.STARTING, 0.0, 5.0), (RunnerState.IDLE, 5.0, 20.0),
        (RunnerState.BUSY, 20.0, 25.0), (RunnerState.IDLE, 25.0, None)]
    (batch,) = records.batches
    assert (batch.started_at, batch.ended_at, batch.size) == (20.5, 24.0, 3)
    assert {(r.job_id, r.prompt_tokens, r.completion_tokens) for r in batch.requests} == {
        (job.id, 2, 4)}
    assert len(batch.requests) == 3
    assert [j.job_id for j in records.jobs] == [job.id]
    # A window after the work has the open idle interval only, and no batches.
    later = store.usage_records(since=50.0, until=60.0, classes={}, default_class=CPU)
    assert [s.state for s in later.spans] == [RunnerState.IDLE]
    assert later.runners[0].runner_class == CPU
    assert later.batches == ()
    assert later.jobs == ()
