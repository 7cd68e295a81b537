"""Every response names its request: ``x-request-id`` (and ``request-id`` on Anthropic's
routes), so the SDKs' ``request_id`` is set and a client's report can be matched to the
server's log lines, which carry the same id."""

from __future__ import annotations

import re
import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stoker.api.errors import ErrorShape, shape_of

#: An id a proxy in front already gave the request is kept if it is this plain (anything
#: else could smuggle text into log lines, and is replaced).
_TRUSTED_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def new_request_id() -> str:
    """A fresh request id."""
    return f"req_{secrets.token_hex(12)}"


class RequestIds:
    """ASGI middleware: an id per request, in ``request.state.request_id`` and the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Name the request, then add the name to the response's headers."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _TRUSTED_ID.fullmatch(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        anthropic = shape_of(scope.get("path", "")) is ErrorShape.ANTHROPIC

        async def named_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                if anthropic:
                    headers["request-id"] = request_id
            await send(message)

        await self.app(scope, receive, named_send)
