"""One error tree. Each error knows its HTTP status, a stable code and whether a retry may help.

The API maps these to JSON responses in one place (``stoker.api.errors``); messages are written
for the person who reads them and never carry secrets.
"""

from __future__ import annotations


class StokerError(Exception):
    """Base of every error Stoker raises on purpose."""

    status_code: int = 500
    code: str = "internal_error"
    retryable: bool = False

    def __init__(self, message: str, *, retry_after_s: float | None = None,
                 param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s
        #: The request field at fault, as OpenAI's ``param`` names it (``messages.0.role``).
        self.param = param
        #: Extra response headers (a 429's ``x-ratelimit-*``).
        self.headers: dict[str, str] = {}


class InvalidRequest(StokerError):
    """The request cannot be parsed: bad JSON, bad UTF-8, wrong shape."""

    status_code = 400
    code = "invalid_request"


class ContextLengthExceeded(InvalidRequest):
    """The prompt and the completion's token budget do not fit the model's context."""

    code = "context_length_exceeded"


class Unauthorized(StokerError):
    """No credentials, or wrong ones."""

    status_code = 401
    code = "unauthorized"


class Forbidden(StokerError):
    """Credentials are fine, but they do not allow this."""

    status_code = 403
    code = "forbidden"


class NotFound(StokerError):
    """The named thing does not exist, or is not the caller's to see."""

    status_code = 404
    code = "not_found"


class ModelNotFound(NotFound):
    """The request names a model this server does not serve."""

    code = "model_not_found"


class Conflict(StokerError):
    """The request clashes with the current state (a duplicate id, an illegal transition)."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(StokerError):
    """The body is over the configured limit."""

    status_code = 413
    code = "payload_too_large"


class Unprocessable(StokerError):
    """Well-formed, but the values are not acceptable."""

    status_code = 422
    code = "unprocessable"


class RateLimited(StokerError):
    """A quota was hit; retry after ``retry_after_s``."""

    status_code = 429
    code = "rate_limited"
    retryable = True


class Unavailable(StokerError):
    """The service cannot take this right now (shutting down, store unreachable)."""

    status_code = 503
    code = "unavailable"
    retryable = True


class LeaseLost(Conflict):
    """The lease is gone: expired, released or never existed."""

    code = "lease_lost"


class ModelFailed(StokerError):
    """The model (local or a provider) failed the request after all of its attempts."""

    status_code = 502
    code = "model_failed"
    retryable = True


class Timeout(StokerError):
    """The work did not finish in the time the caller was promised."""

    status_code = 504
    code = "timeout"
    retryable = True
