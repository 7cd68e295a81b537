"""Traces: written and read back, bad lines named, exported from usage records."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.core.accounting import BatchUse, JobFacts, RequestUse, UsageRecords
from stoker.sim.trace import TraceError, TraceJob, read_trace, trace_from_usage, write_trace

counts = st.lists(st.integers(0, 10_000), min_size=1, max_size=5)
jobs = st.builds(lambda at, team, tier, c: TraceJob(at, team, tier, "m", tuple(c), tuple(c)),
                 st.floats(0, 1e9, allow_nan=False), st.sampled_from(["a", "b"]),
                 st.sampled_from(["smoke", "batch"]), counts)


@given(st.lists(jobs, max_size=20))
def test_a_written_trace_reads_back_the_same_in_arrival_order(written: list[TraceJob]) -> None:
    buffer = io.StringIO()
    assert write_trace(written, buffer) == len(written)
    back = read_trace(buffer.getvalue().splitlines())
    assert back == sorted([TraceJob(round(j.arrival_s, 6), *[getattr(j, f) for f in (
        "team", "tier", "model", "prompt_tokens", "completion_tokens")]) for j in written],
        key=lambda j: j.arrival_s)


@pytest.mark.parametrize(("line", "says"), [
    ("not json", "line 2: not JSON"),
    ("[1]", "line 2: a job is a JSON object"),
    ('{"arrival_s": 1, "team": "a", "tier": "b", "model": "m", "prompt_tokens": [1]}',
     "missing field 'completion_tokens'"),
    ('{"arrival_s": 1, "team": "", "tier": "b", "model": "m", "prompt_tokens": [1], '
     '"completion_tokens": [1]}', "team must be a non-empty string"),
    ('{"arrival_s": 1, "team": "a", "tier": "b", "model": "m", "prompt_tokens": [1, 2], '
     '"completion_tokens": [1]}', "one entry per request"),
    ('{"arrival_s": 1, "team": "a", "tier": "b", "model": "m", "prompt_tokens": [-1], '
     '"completion_tokens": [1]}', "integers"),
])
def test_a_bad_line_is_refused_with_its_number_and_what_is_wrong(line: str, says: str) -> None:
    good = ('{"arrival_s": 0, "team": "a", "tier": "b", "model": "m", "prompt_tokens": [1], '
            '"completion_tokens": [1]}')
    with pytest.raises(TraceError, match=says):
        read_trace([good, line])


def test_a_real_runs_trace_has_each_jobs_recorded_tokens_and_leaves_out_jobs_that_never_ran(
        ) -> None:
    records = UsageRecords(
        runners=(), spans=(),
        batches=(BatchUse("b1", "r", "m", 10.0, 11.0, 2, (RequestUse("q1", "j1", 5, 7),
                                                          RequestUse("q2", "j2", 3, 4))),
                 BatchUse("b2", "r", "m", 12.0, 13.0, 1, (RequestUse("q3", "j1", 6, 8),))),
        jobs=(JobFacts("j1", "a", "smoke", "m", 9.0, 13.0, 2),
              JobFacts("j2", "b", "batch", "m", 8.0, 11.0, 1),
              JobFacts("j3", "b", "batch", "m", 8.5, None, 4)))
    trace = trace_from_usage(records)
    assert trace == [TraceJob(8.0, "b", "batch", "m", (3,), (4,)),
                     TraceJob(9.0, "a", "smoke", "m", (5, 6), (7, 8))]
