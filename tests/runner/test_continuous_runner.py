"""The continuous runner's pure parts: billing intervals and the text that is safe to stream."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stoker.runner.continuous import split_interval


def test_an_interval_is_cut_in_proportion_to_the_weights() -> None:
    assert split_interval(10.0, 14.0, [1.0, 3.0]) == [(10.0, 11.0), (11.0, 14.0)]
    assert split_interval(0.0, 2.0, [0.0, 0.0]) == [(0.0, 1.0), (1.0, 2.0)]


@given(st.floats(0, 1e6), st.floats(0, 1e3),
       st.lists(st.floats(0, 1e4), min_size=1, max_size=20))
def test_the_pieces_cover_the_interval_exactly_once(start: float, length: float,
                                                    weights: list[float]) -> None:
    pieces = split_interval(start, start + length, weights)
    assert pieces[0][0] == start
    assert pieces[-1][1] == start + length
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert sum(end - begin for begin, end in pieces) == pytest.approx(length, abs=1e-6)
