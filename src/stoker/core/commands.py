"""Command jobs: research and training work that runs a command on a lent accelerator.

A command job is a job of one request whose endpoint is ``command``. It waits in its own queue
beside its model's (``<model>#command``), and a runner of that model takes it only when the
model's own inference queue has nothing it could run now and the online reserve lets the
runner be lent. It runs until the command exits, or until it is stopped:

- reclaimed for online work, or its runner drains: the command gets SIGTERM, and SIGKILL once
  its grace period has passed; the request goes back to the queue with the attempt not counted,
  and the next run finds its checkpoint in ``STOKER_CHECKPOINT_DIR`` and resumes from it;
- its job is cancelled: the same signals, and its request ends failed (stopped), the run
  billed to the job;
- its lease is lost (the runner was cut off): the same signals, and nothing is reported, since
  the queue has already given the work to another run.

An exit status of 0 is success; any other is a failure that counts an attempt (retried while
attempts remain); running past ``max_run_s`` fails it for good.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

COMMAND_ENDPOINT = "command"
_QUEUE_SUFFIX = "#command"

#: Variables a command job may not set: Stoker's own contract, and which accelerators the
#: process sees (a job must not reach GPUs its runner was not given).
RESERVED_ENV_PREFIXES = ("STOKER_",)
RESERVED_ENV_NAMES = frozenset({
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES",
    "HIP_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER",
})
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def command_queue(model: str) -> str:
    """The queue that command jobs borrowing runners of ``model`` wait in."""
    return model + _QUEUE_SUFFIX


def is_command_queue(queue: str) -> bool:
    """Whether ``queue`` holds command jobs (not a model's inference requests)."""
    return queue.endswith(_QUEUE_SUFFIX)


def queue_model(queue: str) -> str:
    """The model whose runners serve ``queue`` (itself for a model's own queue)."""
    return queue[: -len(_QUEUE_SUFFIX)] if is_command_queue(queue) else queue


def env_problem(name: str) -> str | None:
    """Why a command job may not set the variable ``name``, or None."""
    if not _ENV_NAME.match(name):
        return f"{name!r} is not an environment variable name"
    if name in RESERVED_ENV_NAMES or name.startswith(RESERVED_ENV_PREFIXES):
        return (f"{name!r} is set by Stoker (the checkpoint contract, and the accelerators the "
                "runner was given); a job may not set it")
    return None


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What a command job runs: the request body, as stored."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    #: Seconds between SIGTERM and SIGKILL when the run is stopped.
    grace_s: float = 30.0
    #: Seconds one run may take before it is killed and the job fails (None: no limit).
    max_run_s: float | None = None

    def body(self) -> dict[str, object]:
        """The stored request body."""
        return {"argv": list(self.argv), "env": dict(self.env), "grace_s": self.grace_s,
                "max_run_s": self.max_run_s}

    @classmethod
    def from_body(cls, body: Mapping[str, object]) -> CommandSpec:
        """The spec a stored body describes (as :meth:`body` wrote it)."""
        argv = body.get("argv")
        env = body.get("env", {})
        if not isinstance(argv, list) or not argv or not isinstance(env, dict):
            raise ValueError("a command body has a non-empty 'argv' list and an 'env' object")
        max_run = body.get("max_run_s")
        return cls(tuple(str(a) for a in argv), {str(k): str(v) for k, v in env.items()},
                   float(str(body.get("grace_s", 30.0))),
                   None if max_run is None else float(str(max_run)))


class StopReason(StrEnum):
    """Why a run was told to stop before its command exited.

    - ``reclaimed``: its runner is taken back for online work.
    - ``draining``: its runner is leaving the pool.
    - ``cancelled``: its job was cancelled.
    - ``lease_lost``: its lease expired; the queue has handed the work on.
    - ``timed_out``: it ran past ``max_run_s``.
    """

    RECLAIMED = "reclaimed"
    DRAINING = "draining"
    CANCELLED = "cancelled"
    LEASE_LOST = "lease_lost"
    TIMED_OUT = "timed_out"


class RunEnd(StrEnum):
    """What becomes of the job's request once a run is over.

    - ``succeeded``: recorded as answered (terminal).
    - ``failed``: recorded as failed; no attempt can fix it (terminal).
    - ``retry``: failed this attempt; queued again while attempts remain.
    - ``returned``: handed back unfinished; queued again, the attempt not counted.
    - ``stopped``: recorded as failed, stopped because its job was cancelled (terminal; the
      run is billed to the job like any run).
    - ``unreported``: nothing is sent, the lease is gone.
    """

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY = "retry"
    RETURNED = "returned"
    STOPPED = "stopped"
    UNREPORTED = "unreported"


def run_end(exit_code: int | None, stop: StopReason | None) -> RunEnd:
    """What a run that ended with ``exit_code`` (None: never started) after being told to
    ``stop`` (None: it was not) means for its request.

    A run that was told to stop is judged by why, not by its status: a command that
    checkpoints and exits 0 on SIGTERM has not finished its work.
    """
    if stop is StopReason.LEASE_LOST:
        return RunEnd.UNREPORTED
    if stop in (StopReason.RECLAIMED, StopReason.DRAINING):
        return RunEnd.RETURNED
    if stop is StopReason.CANCELLED:
        return RunEnd.STOPPED
    if stop is StopReason.TIMED_OUT:
        return RunEnd.FAILED
    if exit_code == 0:
        return RunEnd.SUCCEEDED
    return RunEnd.RETRY


def kill_at(signalled_at: float, grace_s: float, *, cap_s: float | None = None) -> float:
    """When a command signalled at ``signalled_at`` is killed: after its grace, at most
    ``cap_s`` (the pool's limit on how long a lent accelerator is kept)."""
    grace = grace_s if cap_s is None else min(grace_s, cap_s)
    return signalled_at + max(0.0, grace)
