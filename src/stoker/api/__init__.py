"""The HTTP service: the native /api, the runner protocol, and (later) OpenAI-compatible /v1."""

from stoker.api.app import create_app

__all__ = ["create_app"]
