"""An OpenAI batch input file, line by line, validated as the Batch API validates one: every
line is checked, and a file with any bad line (not UTF-8, not JSON, not a request for the
batch's endpoint and model, a repeated custom_id, one line too many) fails the batch before
anything runs, its ``errors`` naming the lines. The same rule for every kind of bad line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from stoker.api.body import describe
from stoker.api.submission import over_token_limit
from stoker.jsonl import jsonl_byte_lines
from stoker.openai_format import BatchInputLine, normalised_body
from stoker.store import NewRequest

# The first this many problems are also listed in a failed batch's ``errors``.
MAX_LISTED_ERRORS = 10


@dataclass
class BatchInput:
    """What a batch input file holds: runnable requests of one model, and its bad lines."""

    model: str | None = None
    requests: list[NewRequest] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0

    def reject(self, number: int, code: str, message: str) -> None:
        """Record line ``number`` as bad, for the failed batch's ``errors``."""
        self.problems.append({"code": code, "message": f"line {number}: {message}",
                              "param": None, "line": number})


def read_batch_input(content: bytes, *, endpoint: str, default_model: str,
                     token_limits: Mapping[str, int], max_requests: int) -> BatchInput:
    """Validate every line of ``content`` against the batch's ``endpoint`` and served models
    (``token_limits``: each model's most new tokens per request).

    The batch runs one model: the first valid line's; lines naming another are rejected.
    """
    found = BatchInput()
    seen: set[str] = set()
    for number, data in jsonl_byte_lines(content):
        found.total += 1
        try:
            raw = json.loads(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            found.reject(number, "invalid_utf8",
                         f"not UTF-8 text (bad byte at column {exc.start + 1})")
            continue
        except json.JSONDecodeError as exc:
            found.reject(number, "invalid_json", f"not valid JSON ({exc.msg})")
            continue
        request = _valid_request(found, number, raw, endpoint)
        if request is None:
            continue
        model = str(request.body.get("model", "default"))
        model = default_model if model == "default" else model
        if model not in token_limits:
            found.reject(number, "model_not_found",
                         f"model {model!r} is not served here; available: "
                         f"{', '.join(sorted(token_limits))}")
        elif (too_many := over_token_limit(request.body, token_limits[model])) is not None:
            found.reject(number, "invalid_request", too_many)
        elif found.model is not None and model != found.model:
            found.reject(number, "invalid_request",
                         f"a batch runs one model; this line names {model!r}, earlier lines "
                         f"{found.model!r}")
        elif request.custom_id in seen:
            found.reject(number, "duplicate_custom_id",
                         f"custom_id {request.custom_id!r} is used by an earlier line")
        elif len(found.requests) >= max_requests:
            found.reject(number, "too_many_requests",
                         f"a batch takes at most {max_requests} requests")
        else:
            found.model = model
            seen.add(request.custom_id)
            found.requests.append(request)
    return found


def _valid_request(found: BatchInput, number: int, raw: Any, endpoint: str) -> NewRequest | None:
    try:
        line = BatchInputLine.model_validate(raw)
    except ValidationError as exc:
        found.reject(number, "invalid_request", describe(exc))
        return None
    if line.url != endpoint:
        found.reject(number, "mismatched_endpoint",
                     f"url {line.url!r} differs from the batch's endpoint {endpoint!r}")
        return None
    try:
        body, stream = normalised_body(line.url, line.body)
    except ValidationError as exc:
        found.reject(number, "invalid_request", f"body: {describe(exc)}")
        return None
    if stream:
        found.reject(number, "invalid_request", "stream is not supported in a batch")
        return None
    return NewRequest(custom_id=line.custom_id, endpoint=line.url, body=body)
