"""Where a completion ends on its stop strings, and what of it may be streamed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stoker.runner.backends.stop_sequences import cut_at_stop, streamable_text


def test_the_earliest_stop_wins_whatever_its_place_in_the_list() -> None:
    # The reported case: "e" comes first in the list, but "r" occurs first in the text.
    assert cut_at_stop(" r and e", ("e", "r")) == (" ", "r")
    assert cut_at_stop("Q: what\nA:", ("\n", "Q:")) == ("", "Q:")


def test_at_one_place_the_longer_stop_is_the_match() -> None:
    assert cut_at_stop("ab\n\nc", ("\n", "\n\n")) == ("ab", "\n\n")


def test_no_stop_leaves_the_text_whole() -> None:
    assert cut_at_stop("nothing here", ("zz",)) == ("nothing here", None)
    assert cut_at_stop("nothing here", ()) == ("nothing here", None)


@given(st.text(alphabet="abc\n", max_size=30),
       st.lists(st.text(alphabet="abc\n", min_size=1, max_size=3), min_size=1, max_size=4))
def test_no_stop_survives_in_the_cut_text(text: str, stops: list[str]) -> None:
    cut, matched = cut_at_stop(text, tuple(stops))
    assert text.startswith(cut)
    if matched is None:
        assert cut == text
        assert not any(s in text for s in stops)
    else:
        assert text[len(cut):].startswith(matched)
        # Nothing of any stop string lies wholly inside what is kept.
        assert not any(s in cut for s in stops)


def test_a_half_decoded_character_is_held_back() -> None:
    assert streamable_text("caf\ufffd", ()) == "caf"


def test_what_may_begin_a_stop_sequence_is_held_back() -> None:
    assert streamable_text("Hello\n", ("\n\n",)) == "Hello"
    assert streamable_text("Hello wo", ("world!", "\n")) == "Hello "
    assert streamable_text("Hello", ("\n\n",)) == "Hello"
