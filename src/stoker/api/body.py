"""Reading request bodies safely: a size limit, strict UTF-8, bounded JSON nesting."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stoker.api.errors import error_response, shape_of
from stoker.errors import InvalidRequest, PayloadTooLarge, Unprocessable

MAX_JSON_DEPTH = 64

M = TypeVar("M", bound=BaseModel)


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413, by Content-Length or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the declared length, then count what actually arrives."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await error_response(413, "payload_too_large", self._message(),
                                     shape=shape_of(scope.get("path", "")))(
                    scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise PayloadTooLarge(self._message())
            return message

        await self.app(scope, counting_receive, send)

    def _message(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes} bytes"


def decode_utf8(raw: bytes) -> str:
    """Bytes to text, refusing invalid UTF-8 with the offending position."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"body is not valid UTF-8 (bad byte at offset {exc.start}); send UTF-8 text"
        ) from None


def _depth_ok(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return True


def parse_json(text: str, *, where: str = "body") -> Any:
    """Parse JSON text, refusing syntax errors and nesting deeper than MAX_JSON_DEPTH."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        value = None
        depth_ok = False
    else:
        depth_ok = _depth_ok(value, MAX_JSON_DEPTH)
    if not depth_ok:
        raise InvalidRequest(f"{where} is nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def describe(exc: ValidationError) -> str:
    """A pydantic error as one readable line."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'value'}: {_message(err)}"
        for err in exc.errors()
    )


def _message(err: Any) -> str:
    if err["type"] == "extra_forbidden":
        return "not a field Stoker takes (refused rather than ignored; leave it out)"
    return str(err["msg"])


def invalid(exc: ValidationError, *, where: str = "body") -> Unprocessable:
    """The error for a value that failed validation: a 422 (400 on OpenAI's routes) naming
    each field, with the first as its ``param``."""
    errors = exc.errors()
    param = (".".join(str(p) for p in errors[0]["loc"]) or None) if errors else None
    return Unprocessable(f"{where}: {describe(exc)}", param=param)


def validate(schema: type[M], value: Any, *, where: str = "body") -> M:
    """Validate parsed JSON against ``schema``; a mismatch is a 422 naming each field."""
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        raise invalid(exc, where=where) from None


def json_body(schema: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra`` declaring the JSON body it reads itself, so the API's
    description (and the fuzzer driven by it) knows what the route takes."""
    document = schema.model_json_schema()
    definitions = document.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": inline(document)}}}}
