"""The HTTP service: the native /api, the runner protocol, and the OpenAI- and
Anthropic-compatible /v1 (``stoker.api.app.create_app`` is its composition root).

Nothing is imported here, so that the upload worker's child process (``upload_worker``)
loads only what validating an upload needs, not the whole service."""
