"""The records cost accounting reads, for a time window, as core's plain data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from stoker.core.accounting import (
    BatchUse,
    JobFacts,
    RequestUse,
    RunnerClass,
    RunnerFacts,
    StateSpan,
    UsageRecords,
)
from stoker.core.model import RunnerState
from stoker.store.sql_base import SQLBase


class UsageSQL(SQLBase):
    """Reads for :func:`stoker.core.accounting.attribute_costs`."""

    def usage_records(self, *, since: float, until: float,
                      classes: Mapping[str, RunnerClass],
                      default_class: RunnerClass) -> UsageRecords:
        """Intervals, batches with their results, and jobs overlapping ``[since, until)``."""
        window = {"since": since, "until": until}
        spans, runners = [], {}
        for runner_id, model, state, started_at, ended_at in self._all("usage_spans", **window):
            spans.append(StateSpan(runner_id, RunnerState(state), started_at, ended_at))
            runners[runner_id] = RunnerFacts(runner_id, model, classes.get(model, default_class))
        uses: dict[str, list[RequestUse]] = defaultdict(list)
        for batch_id, request_id, job_id, prompt, completion in self._all("usage_results",
                                                                          **window):
            uses[batch_id].append(RequestUse(request_id, job_id, int(prompt), int(completion)))
        batches = tuple(
            BatchUse(batch_id, runner_id, model, started_at, ended_at, int(size),
                     tuple(uses.get(batch_id, ())))
            for batch_id, runner_id, model, started_at, ended_at, size
            in self._all("usage_batches", **window))
        jobs = tuple(JobFacts(job_id, team, tier, model, created_at, finished_at, int(n))
                     for job_id, team, tier, model, created_at, finished_at, n
                     in self._all("usage_jobs", **window))
        return UsageRecords(tuple(runners.values()), tuple(spans), batches, jobs)
