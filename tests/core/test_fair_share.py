"""Weighted water-filling of batch slots."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stoker.core.fair_share import Claim, share_slots


def c(key: str, wanted: int, weight: float = 1.0, head: float = 0.0) -> Claim:
    return Claim((key, key), wanted, weight, head)


def test_equal_weights_split_evenly() -> None:
    assert share_slots([c("a", 100), c("b", 100)], 16)[0] == {("a", "a"): 8, ("b", "b"): 8}


def test_small_claim_is_filled_and_gives_back_the_rest() -> None:
    assert share_slots([c("a", 100), c("b", 2)], 16)[0] == {("a", "a"): 14, ("b", "b"): 2}


def test_remainder_goes_to_the_oldest() -> None:
    got = share_slots([c("a", 9, head=5.0), c("b", 9, head=1.0), c("c", 9, head=3.0)], 4)[0]
    assert got == {("b", "b"): 2, ("c", "c"): 1, ("a", "a"): 1}


claims = st.lists(
    st.builds(Claim, key=st.tuples(st.text(max_size=3), st.text(max_size=3)),
              wanted=st.integers(0, 40), weight=st.floats(0.1, 10),
              head_enqueued_at=st.floats(0, 100, allow_nan=False)),
    max_size=10, unique_by=lambda x: x.key,
)


@given(claims, st.integers(0, 64))
def test_shares_are_bounded_and_use_every_slot_they_can(cs: list[Claim], slots: int) -> None:
    got = share_slots(cs, slots)[0]
    assert all(got[x.key] <= x.wanted for x in cs if x.key in got)
    assert sum(got.values()) == min(slots, sum(x.wanted for x in cs))


@given(claims, st.integers(1, 64))
def test_uncapped_claims_get_their_quota_within_a_round(cs: list[Claim], slots: int) -> None:
    # From no history every claim starts level, so each may take one slot before the weights
    # tell: a share is its quota give or take one slot per claim.
    uncapped = [x for x in cs if x.wanted >= slots]
    if not uncapped or len(uncapped) != len([x for x in cs if x.wanted]):
        return  # the quota property holds when no claim is capped by what it wants
    got = share_slots(cs, slots)[0]
    total_weight = sum(x.weight for x in uncapped)
    for x in uncapped:
        quota = slots * x.weight / total_weight
        assert abs(got.get(x.key, 0) - quota) <= len(uncapped)


@given(claims, st.integers(1, 64))
def test_every_claim_gets_a_slot_when_slots_suffice(cs: list[Claim], slots: int) -> None:
    live = [x for x in cs if x.wanted > 0]
    got = share_slots(cs, slots)[0]
    if len(live) <= slots:
        assert all(got.get(x.key, 0) >= 1 for x in live)


def test_passes_carry_over_and_a_newcomer_joins_at_the_front() -> None:
    heavy = c("h", 1000, weight=2.0)
    got, state = share_slots([heavy, c("l", 1000, weight=1.0)], 1)
    assert got == {("h", "h"): 1}
    got, state = share_slots([heavy, c("l", 1000, weight=1.0)], 1, state)
    assert got == {("l", "l"): 1}  # the lighter team's turn, thanks to the carried state
    got, state = share_slots([heavy, c("l", 1000, weight=1.0)], 1, state)
    assert got == {("h", "h"): 1}
    # A newcomer, however light, joins level with the least served: after one older slot,
    # it is next.
    newcomer = c("n", 1, weight=0.001, head=9.0)
    got, state = share_slots([heavy, newcomer], 1, state)
    assert got == {("h", "h"): 1}
    assert set(state.passes) == {("h", "h"), ("n", "n")}  # who stopped waiting is forgotten
    got, state = share_slots([heavy, newcomer], 1, state)
    assert got == {("n", "n"): 1}
