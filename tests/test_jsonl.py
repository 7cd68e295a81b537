"""Where JSONL lines end: the same lines from a document whole or in any pieces."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from stoker.jsonl import jsonl_byte_lines, jsonl_stream_lines

PARTS = [b'{"a": 1}', b"", b" ", b"\r", b"x\xe2\x80\xa8y", b"\xef\xbb\xbf", b"\xff"]


@given(bom=st.booleans(), lines=st.lists(st.sampled_from(PARTS), max_size=20),
       end=st.sampled_from([b"", b"\n", b"\r\n"]),
       cuts=st.lists(st.integers(0, 300), max_size=10))
def test_pieces_split_anywhere_give_the_same_lines(bom: bool, lines: list[bytes], end: bytes,
                                                   cuts: list[int]) -> None:
    data = (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + end
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces = [data[a:b] for a, b in itertools.pairwise([0, *points, len(data)])]
    assert list(jsonl_stream_lines(pieces)) == list(jsonl_byte_lines(data))


def test_a_byte_order_mark_is_dropped_only_at_the_start() -> None:
    data = b"\xef\xbb\xbf" + b'{"a": 1}\n\xef\xbb\xbf{"b": 2}\n'
    pieces = [data[:1], data[1:2], data[2:]]
    assert list(jsonl_stream_lines(pieces)) == [(1, b'{"a": 1}'),
                                                (2, b'\xef\xbb\xbf{"b": 2}')]
