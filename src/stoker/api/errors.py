"""Every error leaves as JSON with a message a person can act on; no traceback ever does."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stoker.errors import StokerError

log = logging.getLogger("stoker.api")


# OpenAI's error ``type`` per status, so its SDK and tools classify our errors as theirs.
_ERROR_TYPES = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
                409: "conflict_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    """The OpenAI error ``type`` for an HTTP status."""
    return _ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")


def error_response(
    status: int, code: str, message: str, *, retry_after_s: float | None = None
) -> JSONResponse:
    """The one error shape, OpenAI's plus our status:
    ``{"error": {"code", "message", "type", "param", "status"}}``."""
    headers = {}
    if retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(retry_after_s)))
    return JSONResponse(
        {"error": {"code": code, "message": message, "type": error_type(status), "param": None,
                   "status": status}},
        status_code=status,
        headers=headers,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map StokerError, framework errors and anything unexpected to JSON responses."""

    @app.exception_handler(StokerError)
    async def _stoker(_: Request, exc: StokerError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message,
                              retry_after_s=exc.retry_after_s)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        )
        return error_response(422, "unprocessable", problems or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error",
                              "internal error; the server log has the details")
