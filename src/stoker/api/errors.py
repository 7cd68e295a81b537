"""Every error leaves as JSON with a message a person can act on; no traceback ever does.

Three shapes, by route, so each family of clients reads our errors as its own:
- ``/v1/messages…`` (Anthropic's SDK): ``{"type": "error", "error": {"type", "message"}}``;
- other ``/v1/…`` routes (OpenAI's SDK and the tools built on it): ``{"error": {"message",
  "type", "param", "code"}}``;
- on both, a request that is well-formed JSON but invalid is a 400 ``invalid_request_error``,
  as those APIs answer it, not a 422;
- Stoker's own ``/api/…`` routes: OpenAI's shape plus ``status``, with 422 for invalid values.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stoker.errors import StokerError

log = logging.getLogger("stoker.api")


class ErrorShape(Enum):
    """Whose error shape a route answers in."""

    STOKER = "stoker"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"


# OpenAI's error ``type`` per status, so its SDK and tools classify our errors as theirs.
_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                 409: "conflict_error", 429: "rate_limit_error"}
# Anthropic's, from its API's documented error types.
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                    429: "rate_limit_error", 503: "overloaded_error"}


def error_type(status: int) -> str:
    """The OpenAI error ``type`` for an HTTP status."""
    return _OPENAI_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def anthropic_error_type(status: int) -> str:
    """The Anthropic error ``type`` for an HTTP status."""
    return _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")


def shape_of(path: str) -> ErrorShape:
    """The error shape of the route at ``path``."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ErrorShape.ANTHROPIC
    if path.startswith("/v1/"):
        return ErrorShape.OPENAI
    return ErrorShape.STOKER


def error_response(
    status: int, code: str, message: str, *, retry_after_s: float | None = None,
    param: str | None = None, shape: ErrorShape = ErrorShape.STOKER,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error in ``shape``: Stoker's ``{"error": {"code", "message", "type", "param",
    "status"}}`` by default (see the module docstring for the others)."""
    headers = dict(headers or {})
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(retry_after_s)))
    body: dict[str, Any]
    if shape is not ErrorShape.STOKER and status == 422:
        status = 400  # both providers answer an invalid request with 400
    if shape is ErrorShape.ANTHROPIC:
        body = {"type": "error",
                "error": {"type": anthropic_error_type(status), "message": message}}
    else:
        body = {"error": {"code": code, "message": message, "type": error_type(status),
                          "param": param}}
        if shape is ErrorShape.STOKER:
            body["error"]["status"] = status
    return JSONResponse(body, status_code=status, headers=headers)


def validation_param(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """OpenAI's ``param`` for a pydantic error location (``body``/``query`` left off)."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or None


def install_error_handlers(app: FastAPI) -> None:
    """Map StokerError, framework errors and anything unexpected to JSON responses."""

    @app.exception_handler(StokerError)
    async def _stoker(request: Request, exc: StokerError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message,
                              retry_after_s=exc.retry_after_s, param=exc.param,
                              shape=shape_of(request.url.path), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in errors
        )
        param = validation_param(errors[0].get("loc", ())) if errors else None
        return error_response(422, "unprocessable", problems or "invalid request", param=param,
                              shape=shape_of(request.url.path))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail),
                              shape=shape_of(request.url.path))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s (request %s)", request.method,
                      request.url.path, getattr(request.state, "request_id", "-"))
        return error_response(500, "internal_error",
                              "internal error; the server log has the details",
                              shape=shape_of(request.url.path))
