"""Settings of command jobs: whether they run at all, where checkpoints live, how long a
stopped command is given before it is killed, how much of its log is kept."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from stoker.settings_strict import _Strict


class CommandSettings(_Strict):
    """Command jobs (see :mod:`stoker.core.commands`). Off by default: a command runs code of
    the submitter's choosing on a runner's host, so a server enables them, and with teams
    each team that may submit them says ``commands: true``."""

    enabled: bool = False
    #: Where each job's ``STOKER_CHECKPOINT_DIR`` is made (``<root>/<job id>``), as runners
    #: see it. Runners on several hosts need it on shared storage (a network file system, a
    #: volume every pod mounts). Default ``<data_dir>/checkpoints``.
    checkpoint_root: Path | None = None
    #: The grace a job gets between SIGTERM and SIGKILL when it names none.
    default_grace_s: float = Field(30.0, ge=0, le=3600)
    #: The most grace a job may ask for: how long a reclaimed accelerator can be held.
    max_grace_s: float = Field(120.0, ge=0, le=3600)
    #: Log kept per run of a command; past it the rest is dropped with a note.
    max_log_bytes_per_run: int = Field(4 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024)
    #: Seconds between the runner's shipments of a running command's log.
    log_interval_s: float = Field(2.0, gt=0, le=60)
