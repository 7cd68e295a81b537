"""Job traces: what arrived, when, from whom, and how many tokens each request took.

A trace is JSON Lines, one job per line, in arrival order::

    {"arrival_s": 12.5, "team": "ml", "tier": "smoke", "model": "llama-8b",
     "prompt_tokens": [120, 98], "completion_tokens": [200, 64]}

``arrival_s`` is seconds from any origin (an export uses epoch seconds, a synthetic trace
seconds from its start, Monday 00:00 UTC); the two token lists have one entry per request.
A trace is exported from a real run's records (:func:`trace_from_usage`) or synthesised
(:mod:`stoker.sim.synth`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from stoker.core.accounting import UsageRecords


class TraceError(ValueError):
    """A trace line that cannot be read, with its line number and what is wrong."""


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One job of a trace."""

    arrival_s: float
    team: str
    tier: str
    model: str
    prompt_tokens: tuple[int, ...]
    completion_tokens: tuple[int, ...]

    @property
    def requests(self) -> int:
        """How many requests the job holds."""
        return len(self.completion_tokens)


def job_line(job: TraceJob) -> str:
    """One job as its JSON line (no newline)."""
    return json.dumps({"arrival_s": round(job.arrival_s, 6), "team": job.team, "tier": job.tier,
                       "model": job.model, "prompt_tokens": list(job.prompt_tokens),
                       "completion_tokens": list(job.completion_tokens)})


def write_trace(jobs: Iterable[TraceJob], out: TextIO) -> int:
    """Write ``jobs`` as JSON Lines; returns how many were written."""
    count = 0
    for job in jobs:
        out.write(job_line(job) + "\n")
        count += 1
    return count


def read_trace(lines: Iterable[str]) -> list[TraceJob]:
    """Parse a trace, sorted by arrival; raises :class:`TraceError` naming the first bad line."""
    jobs = [_parse(n, line) for n, line in _numbered(lines)]
    return sorted(jobs, key=lambda j: j.arrival_s)


def _numbered(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(lines, start=1):
        if line.strip():
            yield n, line


def _parse(n: int, line: str) -> TraceJob:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TraceError(f"line {n}: not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise TraceError(f"line {n}: a job is a JSON object, got {type(raw).__name__}")
    try:
        arrival = float(raw["arrival_s"])
        fields = {k: _text(raw, k) for k in ("team", "tier", "model")}
        prompt = _counts(raw, "prompt_tokens")
        completion = _counts(raw, "completion_tokens")
    except KeyError as exc:
        raise TraceError(f"line {n}: missing field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise TraceError(f"line {n}: {exc}") from None
    if len(prompt) != len(completion) or not completion:
        raise TraceError(f"line {n}: prompt_tokens and completion_tokens need one entry per "
                         f"request each (got {len(prompt)} and {len(completion)})")
    return TraceJob(arrival, fields["team"], fields["tier"], fields["model"], prompt,
                    completion)


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string")
    return value


def _counts(raw: dict[str, Any], key: str) -> tuple[int, ...]:
    value = raw[key]
    if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ValueError(f"{key} must be a list of token counts (integers ≥ 0)")
    return tuple(value)


def trace_from_usage(records: UsageRecords) -> list[TraceJob]:
    """A real run's trace: each job's arrival, team, tier and model, with the tokens its
    recorded results took (a job with no recorded result is left out: nothing says what it
    would have cost)."""
    tokens: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for batch in records.batches:
        for use in batch.requests:
            tokens[use.job_id].append((use.prompt_tokens, use.completion_tokens))
    jobs = []
    for job in records.jobs:
        found = tokens.get(job.job_id)
        if found:
            jobs.append(TraceJob(job.created_at, job.team, job.tier, job.model,
                                 tuple(p for p, _ in found), tuple(c for _, c in found)))
    return sorted(jobs, key=lambda j: j.arrival_s)
