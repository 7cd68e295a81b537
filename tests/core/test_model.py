"""Runner state transitions and job status derivation."""

from __future__ import annotations

import pytest

from stoker.core.model import (
    JobStatus,
    RequestCounts,
    RunnerState,
    job_status,
    runner_transition_allowed,
)

S = RunnerState


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.STARTING, S.IDLE), (S.IDLE, S.BUSY), (S.BUSY, S.IDLE), (S.BUSY, S.DRAINING),
     (S.DRAINING, S.STOPPED), (S.IDLE, S.LENT), (S.LENT, S.IDLE), (S.IDLE, S.IDLE)],
)
def test_allowed_transitions(current: RunnerState, target: RunnerState) -> None:
    assert runner_transition_allowed(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [(S.STOPPED, S.IDLE), (S.DRAINING, S.BUSY), (S.DRAINING, S.IDLE), (S.STARTING, S.BUSY)],
)
def test_forbidden_transitions(current: RunnerState, target: RunnerState) -> None:
    assert not runner_transition_allowed(current, target)


def test_stopped_is_terminal() -> None:
    assert not any(runner_transition_allowed(S.STOPPED, t) for t in S if t != S.STOPPED)


@pytest.mark.parametrize(
    ("counts", "cancelled", "expected"),
    [
        (RequestCounts(total=3, queued=3), False, JobStatus.QUEUED),
        (RequestCounts(total=3, queued=2, running=1), False, JobStatus.RUNNING),
        (RequestCounts(total=3, queued=2, succeeded=1), False, JobStatus.RUNNING),
        (RequestCounts(total=3, succeeded=2, failed=1), False, JobStatus.COMPLETED),
        (RequestCounts(total=3, cancelled=3), True, JobStatus.CANCELLED),
        (RequestCounts(total=3, running=1, cancelled=2), True, JobStatus.CANCELLING),
    ],
)
def test_job_status(counts: RequestCounts, cancelled: bool, expected: JobStatus) -> None:
    assert job_status(counts, cancelled=cancelled) == expected
