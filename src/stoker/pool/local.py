"""Local runner processes: started next to the server, drained with SIGTERM on shutdown."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stoker.child_env import child_environment
from stoker.core.model import Runner
from stoker.runner.loop import PROVIDER_KEY_ENV

log = logging.getLogger("stoker.pool")

PR_SET_PDEATHSIG = 1


def runner_environment(parent: Mapping[str, str], *, runner_token: str | None,
                       provider_key: str | None) -> dict[str, str]:
    """A runner's environment, built from an allow-list of the server's: its own model's key
    and the runner token are the only secrets in it."""
    env = child_environment(parent)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    if runner_token:
        env["STOKER_RUNNER_TOKEN"] = runner_token
    if provider_key:
        env[PROVIDER_KEY_ENV] = provider_key
    return env


def _drain_when_parent_dies() -> None:
    """In the child, before exec: ask Linux to send SIGTERM (a drain) if the pool's process
    dies, so local runners never outlive the server that started them."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class LocalProvisioner:
    """Runner processes for one model, each its own process session (Ctrl-C is ours to route)."""

    server_url: str
    model: str
    log_dir: Path
    runner_token: str | None = None
    #: Set for a remote model's runners: the provider key, passed in their environment only.
    provider_key: str | None = field(default=None, repr=False)
    #: Local models share the machine's cores; remote ones load no torch at all.
    local_model: bool = True
    #: How many runners will share the machine's cores at most (default: each start's count).
    max_runners: int | None = None
    #: Added to each runner's command line (``--replica NAME`` for a lent replica's runners).
    extra_args: tuple[str, ...] = ()
    #: Runner names are ``local-<name_stem>-<n>`` (default: the model's name).
    name_stem: str | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    #: Runners that exited: how, and the last line of their log.
    exits: dict[str, str] = field(default_factory=dict)
    _started: int = 0

    def start(self, count: int) -> list[str]:
        """Start ``count`` runners, sharing the machine's cores between them; their names."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        threads = max(1, (os.cpu_count() or 1) // max(1, self.max_runners or count))
        env = runner_environment(os.environ, runner_token=self.runner_token,
                                 provider_key=self.provider_key)
        started = []
        for _ in range(count):
            name = f"local-{self.name_stem or self.model}-{self._started}"
            self._started += 1
            cmd = [sys.executable, "-m", "stoker.cli", "runner", "--server", self.server_url,
                   "--model", self.model, "--name", name, *self.extra_args]
            if self.local_model:
                cmd += ["--threads", str(threads)]
            with (self.log_dir / f"runner-{name}.log").open("ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True,
                                        preexec_fn=_drain_when_parent_dies)
            log.info("started runner %s (pid %d)", name, proc.pid)
            self.processes.append(proc)
            self.names[proc.pid] = name
            started.append(name)
        return started

    def stop(self, runner: Runner) -> bool:
        """SIGTERM the runner's process: it drains (finishes its batch) and exits."""
        for proc in self.processes:
            if self.names.get(proc.pid) == runner.name and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                log.info("stopping runner %s (pid %d)", runner.name, proc.pid)
                return True
        return False

    def list(self) -> list[str]:
        """Names of the runners still running; exited ones are reaped, and why kept."""
        alive = []
        for proc in list(self.processes):
            if proc.poll() is None:
                alive.append(self.names[proc.pid])
            else:
                self.processes.remove(proc)
                name = self.names.pop(proc.pid, None)
                if name is not None:
                    self.exits[name] = self._why(name, proc.returncode)
        return alive

    def exit_reason(self, name: str) -> str | None:
        """How a reaped runner exited, and the last line of its log."""
        return self.exits.get(name)

    def _why(self, name: str, code: int) -> str:
        how = (f"killed by {signal.Signals(-code).name}" if code < 0
               else f"exited with status {code}")
        try:
            with (self.log_dir / f"runner-{name}.log").open("rb") as log_file:
                log_file.seek(0, os.SEEK_END)
                log_file.seek(max(0, log_file.tell() - 4096))
                lines = log_file.read().decode("utf-8", "replace").strip().splitlines()
        except OSError:
            lines = []
        return f"{how}: {lines[-1].strip()}" if lines else how

    def drain(self, timeout_s: float = 60.0) -> None:
        """SIGTERM every runner, wait for them to finish their batches, SIGKILL stragglers."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in self.processes:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                log.warning("runner pid %d did not drain in %.0fs; killing it", proc.pid,
                            timeout_s)
                proc.kill()
                proc.wait()
