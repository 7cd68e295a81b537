"""Batch time: the research curve's ratio, and a fit that recovers what made the records."""

from __future__ import annotations

import random

import pytest

from stoker.core.accounting import BatchUse, RequestUse
from stoker.sim.batch_time import BatchTimeModel, fit_batch_time, research_curve


def test_the_research_curve_gives_sixteen_rows_fourteen_times_one_rows_tokens_per_s() -> None:
    curve = research_curve()
    assert curve.tokens_per_s(16) / curve.tokens_per_s(1) == pytest.approx(14.0)
    assert curve.tokens_per_s(1) == pytest.approx(50.0)


def test_a_batch_lasts_its_prefill_and_its_longest_rows_steps() -> None:
    model = BatchTimeModel(step_s=0.02, step_s_per_row=0.001, prefill_s_per_token=0.0001)
    assert model.batch_s([100, 300], [10, 50]) == pytest.approx(0.04 + 50 * 0.022)


def test_the_fit_recovers_the_model_that_made_the_batches() -> None:
    truth = BatchTimeModel(step_s=0.02, step_s_per_row=0.0005, prefill_s_per_token=0.0002)
    rng = random.Random(9)
    batches, at = [], 0.0
    for n in range(60):
        rows = rng.randint(1, 16)
        prompt = [rng.randint(10, 500) for _ in range(rows)]
        completion = [rng.randint(1, 200) for _ in range(rows)]
        took = truth.batch_s(prompt, completion)
        batches.append(BatchUse(f"b{n}", "r", "m", at, at + took, rows, tuple(
            RequestUse(f"q{n}-{i}", "j", p, c)
            for i, (p, c) in enumerate(zip(prompt, completion, strict=True)))))
        at += took
    fitted = fit_batch_time(batches)
    assert fitted.step_s == pytest.approx(truth.step_s, rel=1e-6)
    assert fitted.step_s_per_row == pytest.approx(truth.step_s_per_row, rel=1e-6)
    assert fitted.prefill_s_per_token == pytest.approx(truth.prefill_s_per_token, rel=1e-6)


def test_nothing_to_fit_is_said_plainly() -> None:
    with pytest.raises(ValueError, match="give the batch time"):
        fit_batch_time([])


def test_the_round_trip_between_back_to_back_batches_is_measured_and_waits_for_work_are_not(
        ) -> None:
    def batch(n: int, runner: str, start: float) -> BatchUse:
        return BatchUse(f"b{n}", runner, "m", start, start + 1.0, 1,
                        (RequestUse(f"q{n}", "j", 1, 10),))

    # Runner a: gaps of 0.02, 0.04 and 0.03 s between batches, then 30 s waiting for work.
    found = [batch(0, "a", 0.0), batch(1, "a", 1.02), batch(2, "a", 2.06), batch(3, "a", 3.09),
             batch(4, "a", 34.09), batch(5, "b", 1.5)]
    assert fit_batch_time(found).between_batches_s == pytest.approx(0.03)
