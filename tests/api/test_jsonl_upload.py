"""A JSONL upload read as it arrives: lines counted across chunk edges, refused early."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from stoker.api.job_input import JobOptions, ParsedJob
from stoker.api.jsonl_upload import read_upload, validate_upload
from stoker.api.submission import fingerprint
from stoker.core.model import Tier
from stoker.errors import Unprocessable
from stoker.openai_format import token_budget
from tests.api.conftest import line


def request_of(chunks: list[bytes]) -> Request:
    messages = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
    messages.append({"type": "http.request", "body": b"", "more_body": False})

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    return Request({"type": "http", "method": "POST", "headers": []}, receive)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(lines=st.lists(st.sampled_from([b'{"a": 1}', b"", b"x", b"\r"]), max_size=30),
       cuts=st.lists(st.integers(0, 400), max_size=8), limit=st.integers(0, 20))
def test_lines_are_counted_across_chunk_edges(lines: list[bytes], cuts: list[int],
                                              limit: int) -> None:
    data = b"\n".join(lines) + b"\n"
    with_content = sum(1 for x in lines if x)
    chunks = split(data, cuts)
    if with_content > limit:
        with pytest.raises(Unprocessable, match="more than"):
            asyncio.run(read_upload(request_of(chunks), max_lines=limit))
    else:
        assert asyncio.run(read_upload(request_of(chunks), max_lines=limit)) == data


def test_an_upload_past_the_limit_is_refused_before_the_rest_is_read() -> None:
    one = (json.dumps(line("x")) + "\n").encode()
    read: list[int] = []
    chunks = [one * 10 for _ in range(100)]

    async def receive() -> dict[str, object]:
        read.append(1)
        return {"type": "http.request", "body": chunks[len(read) - 1], "more_body": True}

    request = Request({"type": "http", "method": "POST", "headers": []}, receive)
    with pytest.raises(Unprocessable):
        asyncio.run(read_upload(request, max_lines=25))
    assert len(read) == 3  # 30 lines seen: refused there, 97 chunks never read


def test_validated_requests_read_back_as_sent() -> None:
    body = "".join(json.dumps(line(f"id-{i}", prompt=f"p\u2028{i}"), ensure_ascii=False) + "\n"
                   for i in range(5)).encode()
    requests, models = validate_upload(bytearray(b"\xef\xbb\xbf" + body), max_requests=5)
    assert models == {"default"}
    assert [r.custom_id for r in requests] == [f"id-{i}" for i in range(5)]
    assert requests[-1].body["prompt"] == "p\u20284"
    assert [r.custom_id for r in requests[1:3]] == ["id-1", "id-2"]
    with pytest.raises(Unprocessable, match="more than 4"):
        validate_upload(bytearray(body), max_requests=4)


def test_an_upload_s_shortcuts_agree_with_reading_every_request() -> None:
    bodies = [line(f"c{i}", prompt=f"p\u2028{i}", max_tokens=i + 1, temperature=0)
              for i in range(7)]
    data = bytearray("".join(json.dumps(b, ensure_ascii=False) + "\n" for b in bodies).encode())
    uploaded, _ = validate_upload(data, max_requests=10)
    read_back = list(uploaded)
    assert uploaded.most_tokens_asked() == max(token_budget(r.body) for r in read_back) == 7
    tier, options = Tier("batch", 40), JobOptions()
    assert fingerprint(tier, ParsedJob("m", uploaded), options) == \
        fingerprint(tier, ParsedJob("m", read_back), options)
