"""pass@k, Wilson intervals and the gate."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.evals.stats import difference_interval, gate, pass_at_k, wilson


def test_pass_at_k_matches_the_definition() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(7, 2) / C(10, 2): the chance at least one of two draws passes.
    assert pass_at_k(10, 3, 2) == pytest.approx(1 - math.comb(7, 2) / math.comb(10, 2))
    assert pass_at_k(4, 3, 2) == 1.0  # fewer failures than draws
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(3, 4, 1)


@given(st.integers(1, 200), st.data())
def test_wilson_brackets_the_rate_inside_0_1(total: int, data: st.DataObject) -> None:
    passed = data.draw(st.integers(0, total))
    low, high = wilson(passed, total)
    assert 0.0 <= low <= passed / total <= high <= 1.0


def test_wilson_known_value() -> None:
    low, high = wilson(19, 29, 0.95)
    assert (round(low, 3), round(high, 3)) == (0.473, 0.801)


def test_a_small_drop_on_few_samples_is_noise_and_a_large_one_is_not() -> None:
    noise = gate((8, 10), (9, 10), min_pass_rate=0.0, max_drop=0.05, confidence=0.95)
    assert noise.passed
    drop = gate((20, 100), (90, 100), min_pass_rate=0.0, max_drop=0.05, confidence=0.95)
    assert not drop.passed
    assert "fell" in drop.reasons[0]
    low, high = difference_interval((90, 100), (20, 100))
    assert low < -0.7 < high < 0


def test_the_minimum_pass_rate_fails_without_a_baseline() -> None:
    verdict = gate((4, 10), None, min_pass_rate=0.5, max_drop=0.0, confidence=0.95)
    assert not verdict.passed
    assert "minimum" in verdict.reasons[0]
    assert gate((5, 10), None, min_pass_rate=0.5, max_drop=0.0, confidence=0.95).passed
