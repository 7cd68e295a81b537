"""A static runner's batch that can be taken back for online work.

The server may tell a runner, in a heartbeat's reply, to hand back some of the requests it
holds (work below the online tier) after a grace period. The batch then runs as a decode loop
that the runner steps itself: once the grace has passed, those rows leave the loop unanswered
and are reported as returned, while the others (online rows) finish as usual.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from stoker.runner.backends.protocol import ContinuousBackend, GenerationOutput
from stoker.runner.client import ControlPlaneClient
from stoker.runner.continuous import result_json
from stoker.runner.inputs import UnrunnableRequest, generation_input

log = logging.getLogger("stoker.runner")


@dataclass(frozen=True, slots=True)
class ReclaimOrder:
    """Hand back ``request_ids`` once the monotonic clock passes ``at``."""

    request_ids: frozenset[str]
    at: float


class ReclaimInbox:
    """The latest order, set by the heartbeat thread and read between decode steps."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._order: ReclaimOrder | None = None

    def receive(self, reply: dict[str, Any] | None) -> None:
        """Keep the heartbeat's order (a repeated order keeps its first deadline)."""
        if not reply:
            return
        ids = frozenset(str(r) for r in reply.get("request_ids", []))
        with self._lock:
            if self._order is not None and self._order.request_ids >= ids:
                return
            self._order = ReclaimOrder(ids, time.monotonic() + float(reply.get("grace_s", 0)))

    def due(self) -> frozenset[str]:
        """The request ids to hand back now (empty before the deadline)."""
        with self._lock:
            order = self._order
        if order is None or time.monotonic() < order.at:
            return frozenset()
        return order.request_ids

    def named(self) -> frozenset[str]:
        """The request ids the latest order names, before its deadline too (a command is
        signalled at once and given its own grace)."""
        with self._lock:
            order = self._order
        return frozenset() if order is None else order.request_ids

    def clear(self) -> None:
        """Forget the order (its batch is over)."""
        with self._lock:
            self._order = None


#: Given the results of online rows that just finished and their share of the rows decoding
#: in that step, sends them at once; False: not sent (they go with the batch's completion).
EarlyReport = Callable[[list[dict[str, Any]], float], bool]


def run_reclaimable(backend: ContinuousBackend, requests: list[dict[str, Any]],
                    inbox: ReclaimInbox, report_early: EarlyReport | None = None
                    ) -> tuple[list[dict[str, Any]], list[str]]:
    """Run one leased batch, stepping its decode loop: the results of the rows that finished
    (but those ``report_early`` sent: online rows, marked ``online`` by the server, whose
    client must not wait for the whole batch), and the request ids handed back under a
    reclaim order."""
    online = {r["id"] for r in requests if r.get("online")}
    loop = backend.open_loop()
    results: dict[str, dict[str, Any]] = {}
    for req in requests:
        try:
            refused = loop.join(req["id"], generation_input(req["endpoint"], req["body"]))
        except UnrunnableRequest as exc:
            results[req["id"]] = {"request_id": req["id"], "finish_reason": "error",
                                  "error": str(exc), "retryable": False}
            continue
        if refused is not None:
            results[req["id"]] = result_json(req["id"], refused)
    returned: list[str] = []
    try:
        while loop.in_flight:
            due = inbox.due()
            if due:
                returned += loop.abandon(set(due))
                if not loop.in_flight:
                    break
            in_flight = loop.in_flight
            finished: list[tuple[str, GenerationOutput]] = loop.step()
            done = {rid: result_json(rid, out) for rid, out in finished}
            early = [done[rid] for rid, out in finished if rid in online and out.error is None]
            if early and report_early is not None and report_early(early,
                                                                   len(early) / in_flight):
                for sent in early:
                    del done[sent["request_id"]]
            results.update(done)
    except Exception as exc:
        log.exception("batch failed")
        for req in requests:
            if req["id"] not in results and req["id"] not in returned:
                results[req["id"]] = {"request_id": req["id"], "retryable": True,
                                      "error": f"backend failed: {exc}"}
    return [results[r["id"]] for r in requests if r["id"] in results], returned


class EarlyReports:
    """Sends a static batch's online rows as they finish (a partial report each), giving each
    report its rows' share of the time since the last one; the batch's completion then
    covers the rest of its time, from :attr:`cut`."""

    def __init__(self, client: ControlPlaneClient, lease_id: str, started_at: float) -> None:
        self._client, self._lease_id = client, lease_id
        self.cut = started_at
        self.sent = 0

    def __call__(self, results: list[dict[str, Any]], share: float) -> bool:
        now = time.time()
        end = self.cut + (now - self.cut) * min(1.0, share)
        try:
            self._client.report(self._lease_id, uuid.uuid4().hex, self.cut, end, results)
        except Exception as exc:  # they go with the completion instead
            log.warning("could not report online rows early: %s", exc)
            return False
        self.cut, self.sent = end, self.sent + len(results)
        return True
