"""How long a batch takes on one runner: given, or fitted from recorded batches.

A batch prefills its prompts, then decodes one token per row per step until its longest row
is done (static batching, what the lease-run-complete path does). A step costs a fixed part
(reading the weights) plus a part per row, and a batch a fixed part of its own (encoding the
prompts, setting the loop up, making the results)::

    batch_s = batch_overhead_s + prefill_s_per_token * sum(prompt_tokens)
              + max(completion_tokens) * (step_s + step_s_per_row * rows)

Without the per-batch part a fit to mostly large batches makes small ones (a smoke suite's one
to three prompts) look faster than they run: the autoscaler in the simulator then measures a
higher rate than the live one did, and sizes a burst with fewer runners.

Before each batch a runner's lease makes a round trip to the control plane (and after a batch
it reports it first): ``between_batches_s``, measured as the gap between a runner's
back-to-back batches; the requests have left the queue, yet nothing decodes.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from stoker.core.accounting import BatchUse


@dataclass(frozen=True, slots=True)
class BatchTimeModel:
    """The cost of a batch's prefill and of each decode step."""

    step_s: float
    step_s_per_row: float = 0.0
    prefill_s_per_token: float = 0.0
    between_batches_s: float = 0.0
    batch_overhead_s: float = 0.0

    def __post_init__(self) -> None:
        if self.step_s <= 0 or min(self.step_s_per_row, self.prefill_s_per_token,
                                   self.between_batches_s, self.batch_overhead_s) < 0:
            raise ValueError("need step_s > 0 and the other terms >= 0")

    def batch_s(self, prompt_tokens: Sequence[int], completion_tokens: Sequence[int]) -> float:
        """Seconds one batch of these requests takes."""
        if not completion_tokens:
            return 0.0
        steps = max(completion_tokens)
        rows = len(completion_tokens)
        return (self.batch_overhead_s + self.prefill_s_per_token * sum(prompt_tokens)
                + steps * (self.step_s + self.step_s_per_row * rows))

    def tokens_per_s(self, rows: int) -> float:
        """Generated tokens per second with ``rows`` rows decoding (prefill aside)."""
        return rows / (self.step_s + self.step_s_per_row * rows)


def research_curve(*, single_stream_tokens_per_s: float = 50.0, batch: int = 16,
                   speedup: float = 14.0, prefill_tokens_per_s: float = 10_000.0
                   ) -> BatchTimeModel:
    """A model where a batch of ``batch`` rows generates ``speedup`` times the tokens/s of one
    row (published figures for an 8B model on an H100-class GPU: 16 rows ≈ 14 x)."""
    if not 1.0 <= speedup <= batch:
        raise ValueError(f"speedup must be between 1 and the batch size ({batch})")
    single_step_s = 1.0 / single_stream_tokens_per_s
    # step(b) = base + per_row * b, with step(1) = single_step_s and b / step(b) = speedup /
    # step(1) at b = batch.
    per_row = single_step_s * (batch / speedup - 1.0) / (batch - 1.0)
    return BatchTimeModel(single_step_s - per_row, per_row, 1.0 / prefill_tokens_per_s)


def fit_batch_time(batches: Sequence[BatchUse]) -> BatchTimeModel:
    """The model that best explains recorded batches (least squares over their durations,
    no term below zero). Needs at least one batch that generated tokens."""
    rows = [(sum(r.prompt_tokens for r in b.requests),
             max(r.completion_tokens for r in b.requests), len(b.requests),
             b.ended_at - b.started_at)
            for b in batches if b.requests and b.ended_at > b.started_at
            and max(r.completion_tokens for r in b.requests) > 0]
    if not rows:
        raise ValueError("no recorded batch generated tokens: give the batch time instead")
    prompt = np.array([r[0] for r in rows], dtype=float)
    steps = np.array([r[1] for r in rows], dtype=float)
    size = np.array([r[2] for r in rows], dtype=float)
    duration = np.array([r[3] for r in rows], dtype=float)
    columns = [steps, steps * size, prompt, np.ones_like(steps)]
    kept = [0, 1, 2, 3]
    coef = np.zeros(4)
    # Drop a term whose fitted cost is negative (noise, or a term the data cannot show) and
    # fit again without it; the per-step term always stays.
    while True:
        design = np.column_stack([columns[i] for i in kept])
        solved, *_ = np.linalg.lstsq(design, duration, rcond=None)
        negative = [k for k, c in zip(kept, solved, strict=True) if c < 0 and k != 0]
        if not negative:
            coef = np.zeros(4)
            for k, c in zip(kept, solved, strict=True):
                coef[k] = c
            break
        kept.remove(negative[0])
    if coef[0] <= 0:
        coef = np.array([float(duration.sum() / steps.sum()), 0.0, 0.0, 0.0])
    return BatchTimeModel(float(coef[0]), float(coef[1]), float(coef[2]),
                          between_batches_s(batches), float(coef[3]))


#: A gap between one runner's batches longer than this was a wait for work, not a round trip.
BACK_TO_BACK_S = 0.25


def between_batches_s(batches: Sequence[BatchUse]) -> float:
    """The median gap between a runner's back-to-back batches (0: none seen)."""
    by_runner: dict[str, list[BatchUse]] = defaultdict(list)
    for b in batches:
        by_runner[b.runner_id].append(b)
    gaps = []
    for found in by_runner.values():
        found.sort(key=lambda b: b.started_at)
        gaps += [nxt.started_at - prev.ended_at
                 for prev, nxt in itertools.pairwise(found)
                 if 0 <= nxt.started_at - prev.ended_at < BACK_TO_BACK_S]
    return statistics.median(gaps) if gaps else 0.0
