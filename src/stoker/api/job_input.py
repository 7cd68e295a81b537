"""Turning a client's submission (JSON or JSONL in the OpenAI Batch input format) into a job."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stoker.api.body import describe
from stoker.errors import ModelNotFound, Unprocessable
from stoker.openai_format import BatchInputLine, normalised_body
from stoker.store import NewRequest

# A job's problems are listed up to this many, so one bad file gives one useful answer.
MAX_REPORTED_PROBLEMS = 10


class JobOptions(BaseModel):
    """A job's options: inline in a JSON submission, query parameters with a JSONL upload."""

    model_config = ConfigDict(extra="forbid")

    tier: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict, max_length=16)
    concurrency_group: str | None = Field(None, min_length=1, max_length=256)
    cancel_in_progress: bool = False
    cache: bool = True
    #: Serve every request by the checkpoint revision current at submission, through a
    #: rolling update too (an eval's answers all come from one model).
    pin_revision: bool = False
    #: A deadline, in seconds after submission: what has not run by then is cancelled (the
    #: job ``expired``). None: the job runs until done.
    expires_after_s: float | None = Field(None, gt=0, le=30 * 86_400)
    #: POSTed the finished job, signed with the team's webhook secret.
    callback_url: str | None = Field(None, min_length=1, max_length=2048)


class JobSubmission(JobOptions):
    """``POST /api/jobs`` as JSON: the requests plus the job's options."""

    requests: list[dict[str, Any]] = Field(min_length=1)


class RequestsReadBack(Sequence[NewRequest]):
    """Requests made one at a time as they are read, never held all at once; a subclass says
    how many there are and how to make one."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _at(self, index: int) -> NewRequest:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> NewRequest: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[NewRequest]: ...

    def __getitem__(self, index: int | slice) -> NewRequest | Sequence[NewRequest]:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self._at(index % len(self))

    def __iter__(self) -> Iterator[NewRequest]:
        return (self._at(i) for i in range(len(self)))

    def canonical_lines(self) -> Iterator[bytes]:
        """Each request as canonical JSON (see :func:`canonical_line`), in order."""
        return (canonical_line(r) for r in self)

    def most_tokens_asked(self) -> int | None:
        """The largest token budget any request asks for, where known without a pass."""
        return None


def canonical_line(request: NewRequest) -> bytes:
    """``[custom_id, endpoint, body]`` as compact JSON with sorted keys: the same request
    gives the same bytes however it was sent."""
    return json.dumps([request.custom_id, request.endpoint, request.body], sort_keys=True,
                      ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True, slots=True)
class ParsedJob:
    """A submission that passed validation: its model and normalised requests."""

    model: str
    #: A list, or an upload's requests read back one at a time (see jsonl_upload).
    requests: Sequence[NewRequest]
    #: The queue the requests wait in (None: the model's; a command job's is apart).
    queue: str | None = None


def line_request(number: int, raw: Any, problems: list[str]) -> NewRequest | None:
    """Line ``number`` as a request, or None with its problem added to ``problems``."""
    try:
        line = BatchInputLine.model_validate(raw)
        body, stream = normalised_body(line.url, line.body)
    except ValidationError as exc:
        problems.append(f"line {number}: {describe(exc)}")
        return None
    if stream:
        problems.append(f"line {number}: stream is not supported in a job")
        return None
    return NewRequest(custom_id=line.custom_id, endpoint=line.url, body=body)


def parse_lines(items: list[tuple[int, Any]], *, max_requests: int) -> list[NewRequest]:
    """Validate every line; raise one 422 listing the first problems, or return the requests."""
    if not items:
        raise Unprocessable("the job has no requests; send at least one line")
    if len(items) > max_requests:
        raise Unprocessable(
            f"the job has {len(items)} requests; the limit is {max_requests} per job"
        )
    problems: list[str] = []
    requests: list[NewRequest] = []
    first_line: dict[str, int] = {}
    for number, raw in items:
        req = line_request(number, raw, problems)
        if req is None:
            continue
        if req.custom_id in first_line:
            problems.append(f"line {number}: custom_id {req.custom_id!r} is already used on "
                            f"line {first_line[req.custom_id]}; custom_ids must be unique")
            continue
        first_line[req.custom_id] = number
        requests.append(req)
    if problems:
        more = len(problems) - MAX_REPORTED_PROBLEMS
        shown = "; ".join(problems[:MAX_REPORTED_PROBLEMS])
        raise Unprocessable(shown + (f"; and {more} more" if more > 0 else ""))
    return requests


def resolve_model(requests: list[NewRequest], *, default_model: str, known: set[str]) -> str:
    """The job's one model: every line must name the same one (``default`` is the default)."""
    names = {str(r.body.get("model", "default")) for r in requests}
    return resolve_model_names(names, default_model=default_model, known=known)


def resolve_model_names(names: set[str], *, default_model: str, known: set[str]) -> str:
    """The one model that the model ``names`` of a job's lines mean."""
    resolved = {default_model if n == "default" else n for n in names}
    if len(resolved) > 1:
        raise Unprocessable(
            f"a job runs one model, but its lines name {', '.join(sorted(names))}; "
            "split them into one job per model"
        )
    (model,) = resolved
    if model not in known:
        raise ModelNotFound(
            f"model {model!r} is not served here; available: {', '.join(sorted(known))}"
        )
    return model


def parse_submission(
    payload: Any, options: JobOptions, *, lines: list[tuple[int, Any]] | None,
    max_requests: int, default_model: str, known_models: set[str],
) -> tuple[JobOptions, ParsedJob]:
    """Validate a JSON submission (``payload``, already parsed) or the numbered ``lines`` of
    a JSONL upload, which come with their ``options``."""
    if lines is None:
        if not isinstance(payload, dict):
            raise Unprocessable(
                f"the body is a JSON {type(payload).__name__}; send a JSON object "
                '{"requests": [...]} or JSONL lines with Content-Type: application/jsonl')
        try:
            submission = JobSubmission.model_validate(payload)
        except ValidationError as exc:
            raise Unprocessable(f"body: {describe(exc)}") from None
        options = submission
        lines = list(enumerate(submission.requests, start=1))
    requests = parse_lines(lines, max_requests=max_requests)
    model = resolve_model(requests, default_model=default_model, known=known_models)
    return options, ParsedJob(model=model, requests=requests)
