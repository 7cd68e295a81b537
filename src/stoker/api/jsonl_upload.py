"""A JSONL job upload of any size, without holding it as objects.

The body is read as it arrives and refused the moment it holds more lines than a job may
(not after all of it is parsed). Every line is then validated once (the full request schema),
and what is kept is each request in compact normalised form, one line each in one buffer: about
the size of the upload. The requests are read back from it, one at a time, each time the job
is walked (token limits, its fingerprint, the store's rows), so a 100,000-line job never
exists as 100,000 request objects at once.
"""

from __future__ import annotations

import json
import re
from array import array
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from stoker.api.body import parse_json
from stoker.api.job_input import (
    MAX_REPORTED_PROBLEMS,
    RequestsReadBack,
    canonical_line,
    line_request,
)
from stoker.errors import Unprocessable
from stoker.jsonl import jsonl_byte_lines
from stoker.openai_format import token_budget

if TYPE_CHECKING:  # the upload worker's child imports this module, not the web framework
    from fastapi import Request
from stoker.store import NewRequest

# The end of a line with something on it (a blank line is no request).
_LINE_END = re.compile(rb"[^\n]\n")


async def read_upload(request: Request, *, max_lines: int) -> bytearray:
    """The upload's bytes; 422 as soon as it holds more than ``max_lines`` lines."""
    body = bytearray()
    lines = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        lines += len(_LINE_END.findall(chunk))
        if chunk[:1] == b"\n" and body and body[-1] != ord("\n"):
            lines += 1  # a line whose end fell at the start of this chunk
        if lines > max_lines:
            raise Unprocessable(f"the job has more than {max_lines} requests (the limit per "
                                "job); split it into smaller jobs")
        body += chunk
    return body


class UploadedRequests(RequestsReadBack):
    """A job's validated requests, kept as compact JSON lines and read back on demand."""

    def __init__(self, data: bytes | bytearray, offsets: array[int], most_tokens: int) -> None:
        self._data = data
        self._offsets = offsets  # start of each line, then the end of the last
        self._most_tokens = most_tokens

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @property
    def data(self) -> bytes | bytearray:
        """The kept lines, one after another."""
        return self._data

    @property
    def offsets(self) -> array[int]:
        """Where each kept line starts, then where the last one ends."""
        return self._offsets

    def _at(self, index: int) -> NewRequest:
        line = self._data[self._offsets[index]:self._offsets[index + 1]]
        custom_id, endpoint, body = json.loads(line)
        return NewRequest(custom_id=custom_id, endpoint=endpoint, body=body)

    def canonical_lines(self) -> Iterator[bytes]:
        """The kept lines themselves: they are canonical already (no parse)."""
        for i in range(len(self)):
            yield bytes(self._data[self._offsets[i]:self._offsets[i + 1]])

    def most_tokens_asked(self) -> int:
        """Measured as the lines were validated."""
        return self._most_tokens


def validate_upload(data: bytearray, *, max_requests: int) -> tuple[UploadedRequests, set[str]]:
    """Validate every line (422 listing the first problems); the requests, and the model
    names they give. ``data`` is emptied once its requests are kept."""
    validated = validate_lines(jsonl_byte_lines(data), max_requests=max_requests)
    data.clear()  # the upload itself is no longer needed: its requests are kept
    return validated


def validate_lines(lines: Iterable[tuple[int, bytes]], *, max_requests: int
                   ) -> tuple[UploadedRequests, set[str]]:
    """:func:`validate_upload` over an upload's numbered lines, however they are read."""
    problems: list[str] = []
    first_line: dict[str, int] = {}
    models: set[str] = set()
    kept = bytearray()
    offsets = array("q", [0])
    most_tokens = 0
    for number, raw in lines:
        request = _valid_line(number, raw, problems)
        if request is None:
            continue
        if request.custom_id in first_line:
            problems.append(f"line {number}: custom_id {request.custom_id!r} is already used "
                            f"on line {first_line[request.custom_id]}; custom_ids must be "
                            "unique")
            continue
        first_line[request.custom_id] = number
        models.add(str(request.body.get("model", "default")))
        most_tokens = max(most_tokens, token_budget(request.body))
        kept += canonical_line(request)
        offsets.append(len(kept))
        if len(offsets) - 1 > max_requests:
            raise Unprocessable(f"the job has more than {max_requests} requests (the limit "
                                "per job); split it into smaller jobs")
    if problems:
        more = len(problems) - MAX_REPORTED_PROBLEMS
        shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
        raise Unprocessable(shown + (f"; and {more} more" if more > 0 else ""))
    if len(offsets) == 1:
        raise Unprocessable("the job has no requests; send at least one line")
    return UploadedRequests(kept, offsets, most_tokens), models


def _valid_line(number: int, raw: bytes, problems: list[str]) -> NewRequest | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(f"line {number}: not UTF-8 text (bad byte at column {exc.start + 1})")
        return None
    value: Any = parse_json(text, where=f"line {number}")
    return line_request(number, value, problems)
