"""Streamed text on its way from runners to the clients waiting on it.

A runner posts the text its streamed rows have so far (``/api/runners/{id}/progress``); the
replica that gets it publishes it here and announces it to the other replicas (PostgreSQL
``NOTIFY``), so the one holding the client's connection relays it whichever replica the runner
talks to. Texts only grow: each is the whole text so far, so a repeat or a late copy changes
nothing, and a lost one is made good by the final result, which carries the whole text.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class StreamWatch:
    """One request's text so far, and an event set each time it grows."""

    text: str = ""
    grown: asyncio.Event = field(default_factory=asyncio.Event)


class StreamHub:
    """The requests being streamed by this replica's clients (used on the event loop)."""

    def __init__(self) -> None:
        self._watches: dict[str, StreamWatch] = {}

    @contextlib.contextmanager
    def watch(self, request_id: str) -> Iterator[StreamWatch]:
        """Follow ``request_id``'s text while the block runs."""
        watch = self._watches.setdefault(request_id, StreamWatch())
        try:
            yield watch
        finally:
            self._watches.pop(request_id, None)

    def publish(self, request_id: str, text: str) -> None:
        """A runner's text so far for ``request_id``; ignored unless someone follows it and
        it is longer than what they have."""
        watch = self._watches.get(request_id)
        if watch is not None and len(text) > len(watch.text):
            watch.text = text
            watch.grown.set()

    def hear(self, payload: str) -> None:
        """Another replica's announcement: ``request_id<TAB>text``."""
        request_id, _, text = payload.partition("\t")
        self.publish(request_id, text)
