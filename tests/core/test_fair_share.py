"""Weighted water-filling of batch slots."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stoker.core.fair_share import Claim, share_slots


def c(key: str, wanted: int, weight: float = 1.0, head: float = 0.0) -> Claim:
    return Claim((key, key), wanted, weight, head)


def test_equal_weights_split_evenly() -> None:
    assert share_slots([c("a", 100), c("b", 100)], 16) == {("a", "a"): 8, ("b", "b"): 8}


def test_small_claim_is_filled_and_gives_back_the_rest() -> None:
    assert share_slots([c("a", 100), c("b", 2)], 16) == {("a", "a"): 14, ("b", "b"): 2}


def test_remainder_goes_to_the_oldest() -> None:
    got = share_slots([c("a", 9, head=5.0), c("b", 9, head=1.0), c("c", 9, head=3.0)], 4)
    assert got == {("b", "b"): 2, ("c", "c"): 1, ("a", "a"): 1}


claims = st.lists(
    st.builds(Claim, key=st.tuples(st.text(max_size=3), st.text(max_size=3)),
              wanted=st.integers(0, 40), weight=st.floats(0.1, 10),
              head_enqueued_at=st.floats(0, 100, allow_nan=False)),
    max_size=10, unique_by=lambda x: x.key,
)


@given(claims, st.integers(0, 64))
def test_shares_are_bounded_and_use_every_slot_they_can(cs: list[Claim], slots: int) -> None:
    got = share_slots(cs, slots)
    assert all(got[x.key] <= x.wanted for x in cs if x.key in got)
    assert sum(got.values()) == min(slots, sum(x.wanted for x in cs))


@given(claims, st.integers(1, 64))
def test_uncapped_claims_get_their_quota_rounded(cs: list[Claim], slots: int) -> None:
    uncapped = [x for x in cs if x.wanted >= slots]
    if not uncapped or len(uncapped) != len([x for x in cs if x.wanted]):
        return  # the quota property holds when no claim is capped by what it wants
    got = share_slots(cs, slots)
    total_weight = sum(x.weight for x in uncapped)
    for x in uncapped:
        quota = slots * x.weight / total_weight
        assert int(quota) <= got.get(x.key, 0) <= int(quota) + 1
