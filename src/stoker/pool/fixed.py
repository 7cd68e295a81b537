"""A local pool of a fixed size: ``stoker serve --runners N`` for a model that is not
autoscaled. It keeps N runner processes: one that exits (a crash, an OOM kill, SIGKILL) is
stopped in the store at once, so its leased requests go back to the queue within a step, and
is replaced; runners that keep dying before they get warm (a bad checkpoint) are restarted
with back-off, each death logged with the reason from its log, not in a tight loop.

Unlike the autoscaler it takes no lease in the store: these processes are this replica's own.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from stoker.clock import Clock
from stoker.pool.provisioner import Provisioner
from stoker.pool.watch import ExitWatch, StartWatch, look_at_pool
from stoker.store import Store

log = logging.getLogger("stoker.pool")


@dataclass
class FixedPool:
    """Keeps ``size`` runners of one model running, a step at a time."""

    store: Store
    provisioner: Provisioner
    size: int
    clock: Clock
    #: How often exits are looked for: a dead runner's requests are back within this.
    interval_s: float = 0.5
    starts: StartWatch = field(default_factory=StartWatch)
    exits: ExitWatch = field(default_factory=ExitWatch)

    @property
    def model(self) -> str:
        """The model whose pool this is."""
        return self.provisioner.model

    def step(self) -> list[str]:
        """Settle exits, then start what is missing unless starts are backing off; the
        names started."""
        now = self.clock.now()
        _, live, _ = look_at_pool(self.store, self.provisioner, self.starts, self.exits,
                                  now=now)
        missing = self.size - len(live)
        if missing <= 0 or now < self.starts.paused_until:
            return []
        names = self.provisioner.start(missing)
        self.starts.started(names)
        self.exits.seen.update(names)
        log.info("pool %s: started %d runner(s) to keep %d: %s", self.model, len(names),
                 self.size, ", ".join(names))
        return names

    def run(self, stop: threading.Event) -> None:
        """Step every ``interval_s`` until ``stop``."""
        while not stop.wait(self.interval_s):
            try:
                self.step()
            except Exception:
                log.exception("pool %s: supervising step failed; trying again", self.model)
