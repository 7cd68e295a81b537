"""The runner process: register, load the model once, then lease → run → report until drained.

SIGTERM or SIGINT drains: the batch in hand is finished and reported, the server is told, and
the process exits with nothing leased left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from stoker.core.continuous import LoopConfig
from stoker.runner.backends.protocol import Backend, ContinuousBackend, GenerationInput
from stoker.runner.client import ControlPlaneClient, LeasedWork, LeaseGone, RunnerGone
from stoker.runner.command import CommandTerms, CommandWork, StopOrders, is_command_work
from stoker.runner.continuous import ContinuousWork, result_json
from stoker.runner.inputs import UnrunnableRequest, generation_input
from stoker.runner.reclaim import EarlyReports, ReclaimInbox, run_reclaimable

log = logging.getLogger("stoker.runner")


@dataclass(frozen=True, slots=True)
class RunnerOptions:
    """How one runner process was asked to run."""

    server: str
    model: str
    name: str
    token: str | None = None
    checkpoint: Path | None = None
    max_batch_size: int | None = None
    device: str = "cpu"
    #: A lent replica (of a lending fleet) whose OpenAI API this runner sends its work to.
    replica: str | None = None


#: The environment variable a runner of a remote model reads its provider key from.
PROVIDER_KEY_ENV = "STOKER_PROVIDER_API_KEY"


def load_backend(terms: dict[str, Any], checkpoint: Path | None, device: str) -> Backend:
    """The backend the server's registration terms name: a local checkpoint with
    transformers, or a provider endpoint (its key from ``STOKER_PROVIDER_API_KEY``)."""
    spec = terms.get("backend") or {"kind": "transformers"}
    if spec["kind"] == "transformers":
        from stoker.runner.backends.transformers import TransformersBackend

        return TransformersBackend(checkpoint or Path(terms["model_path"]), device=device,
                                   dtype=str(spec.get("dtype", "auto")))
    from stoker.runner.backends.providers import AnthropicBackend, OpenAICompatibleBackend
    from stoker.runner.backends.remote import RemoteEndpoint

    # Taken out of the environment, so nothing this process starts inherits it.
    key = os.environ.pop(PROVIDER_KEY_ENV, "").strip() or None
    endpoint = RemoteEndpoint(
        base_url=spec["base_url"], remote_model=spec["remote_model"], api_key=key,
        max_concurrency=int(spec["max_concurrency"]), timeout_s=float(spec["timeout_s"]),
        max_retries=int(spec["max_retries"]), max_backoff_s=float(spec["max_backoff_s"]))
    kind = {"openai": OpenAICompatibleBackend, "anthropic": AnthropicBackend}[spec["kind"]]
    return kind(endpoint)


class Runner:
    """One runner's main loop and heartbeat thread."""

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        self.drain = threading.Event()
        self._finished = threading.Event()
        self.client = ControlPlaneClient(options.server, token=options.token, stop=self.drain)
        self._lease_lock = threading.Lock()
        self._current_lease: str | None = None
        self._leases_in_hand: Callable[[], list[str]] = self._static_lease
        self._heartbeat_s = 5.0
        self._long_poll_s = 10.0
        self._reclaim = ReclaimInbox()
        self._stops = StopOrders()
        self._commands: CommandWork | None = None

    def install_signal_handlers(self) -> None:
        """Drain on SIGTERM and SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.drain.set())

    def run(self) -> int:
        """Run until drained; returns the process exit code."""
        terms = self.client.register(
            name=self.options.name, model=self.options.model, pid=os.getpid(),
            host=socket.gethostname(), max_batch_size=self.options.max_batch_size,
            launched_at=psutil.Process().create_time(), replica=self.options.replica,
        )
        self._heartbeat_s = float(terms["heartbeat_interval_s"])
        self._long_poll_s = float(terms["long_poll_s"])
        log.info("runner %s loading %s", self.client.runner_id, self.options.model)
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        try:
            backend = load_backend(terms, self.options.checkpoint, self.options.device)
            if not self.drain.is_set():
                self.client.set_state("idle")
            self._work(backend, terms)
        except RunnerGone as exc:
            log.error("the server stopped this runner: %s", exc)
            return 1
        except httpx.TransportError as exc:
            # Only raised once draining: the control plane is gone, nobody is left to tell.
            log.error("control plane unreachable while draining (%s); exiting", exc)
            return 1
        finally:
            self.drain.set()
            self._finished.set()
            heartbeat.join(timeout=15)
        self.client.set_state("stopped")
        self.client.close()
        log.info("runner %s drained and stopped", self.client.runner_id)
        return 0

    def _work(self, backend: Backend, terms: dict[str, Any]) -> None:
        batching = terms.get("batching") or {}
        if terms.get("commands"):
            self._commands = CommandWork(self.client, CommandTerms.from_terms(terms["commands"]),
                                         reclaim=self._reclaim, stops=self._stops,
                                         drain=self.drain)
        if batching.get("continuous") and isinstance(backend, ContinuousBackend):
            config = LoopConfig(int(terms["runner"]["max_batch_size"]),
                                int(batching.get("online_headroom_rows", 0)))
            continuous = ContinuousWork(self.client, backend, config, self.drain,
                                        long_poll_s=self._long_poll_s,
                                        commands=self._commands, reclaim=self._reclaim)
            with self._lease_lock:
                self._leases_in_hand = continuous.open_leases
            continuous.run()
            return
        while not self.drain.is_set():
            work, draining = self.client.lease(self._long_poll_s)
            if work is not None:
                self._run_batch(backend, work)
            if draining:
                self.drain.set()

    def _run_batch(self, backend: Backend, work: LeasedWork) -> None:
        with self._lease_lock:
            self._current_lease = work.lease_id
        try:
            if self._commands is not None and is_command_work(work):
                self._commands.run(work)
                return
            started = time.time()
            returned: list[str] = []
            if isinstance(backend, ContinuousBackend):
                early = EarlyReports(self.client, work.lease_id, started)
                results, returned = run_reclaimable(backend, work.requests, self._reclaim,
                                                    report_early=early)
                rate_limited, started = 0, early.cut
                if early.sent and not results and not returned:
                    return  # every row went early: the lease ended with the last report
            else:
                results, rate_limited = run_requests(backend, work.requests)
            ended = time.time()
            if returned:
                log.info("handed %d requests back for online work", len(returned))
            try:
                self.client.complete(work.lease_id, started, ended, results,
                                     provider_rate_limits=rate_limited, returned=returned)
            except LeaseGone as exc:
                log.warning("lease %s lost before reporting: %s", work.lease_id, exc)
        finally:
            self._reclaim.clear()
            with self._lease_lock:
                self._current_lease = None

    def _heartbeat_loop(self) -> None:
        told_draining = False
        while not self._finished.is_set():
            if not self.drain.is_set():
                if self.drain.wait(self._heartbeat_s):
                    continue  # tell the server about the drain at once
            else:
                if not told_draining:
                    told_draining = self._tell_draining()
                if self._finished.wait(self._heartbeat_s):
                    return
            with self._lease_lock:
                in_hand = self._leases_in_hand
            leases = in_hand()
            try:
                reply = self.client.heartbeat(leases)
            except Exception as exc:
                log.warning("heartbeat failed: %s", exc)
                continue
            if reply.get("draining"):
                self.drain.set()
            self._reclaim.receive(reply.get("reclaim"))
            self._stops.receive(reply)

    def _static_lease(self) -> list[str]:
        with self._lease_lock:
            return [self._current_lease] if self._current_lease else []

    def _tell_draining(self) -> bool:
        try:
            self.client.set_state("draining")
        except Exception as exc:
            log.warning("could not report draining: %s", exc)
            return False
        return True


def run_requests(backend: Backend, requests: list[dict[str, Any]]
                 ) -> tuple[list[dict[str, Any]], int]:
    """Run one leased batch as one backend call: one result dict per request, in order, and
    how many provider 429s it met."""
    results: dict[str, dict[str, Any]] = {}
    runnable: list[tuple[str, GenerationInput]] = []
    rate_limited = 0
    for req in requests:
        try:
            runnable.append((req["id"], generation_input(req["endpoint"], req["body"])))
        except UnrunnableRequest as exc:
            results[req["id"]] = {"request_id": req["id"], "finish_reason": "error",
                                  "error": str(exc), "retryable": False}
    try:
        outputs = backend.generate([spec for _, spec in runnable])
    except Exception as exc:
        log.exception("batch failed")
        for rid, _ in runnable:
            results[rid] = {"request_id": rid, "error": f"backend failed: {exc}",
                            "retryable": True}
    else:
        for (rid, _), out in zip(runnable, outputs, strict=True):
            rate_limited += out.rate_limited
            results[rid] = result_json(rid, out)
    return [results[req["id"]] for req in requests], rate_limited
