"""The controller's own duty beyond the policy: when runners keep dying before they get warm
(a bad checkpoint, a broken node), it stops starting one per step and backs off, and says why.
The dying runners are a fault, so a provisioner double stands in for them; the store is real
(the real processes are in tests/e2e/test_autoscale.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from stoker.core.autoscale import AutoscaleConfig
from stoker.core.model import Runner
from stoker.core.tiers import DEFAULT_TIERS
from stoker.pool.controller import PoolController
from stoker.pool.watch import START_BACKOFF_S
from stoker.store.sqlite import SQLiteStore
from tests.pool.conftest import ManualClock

MODEL = "tiny-llama"


@dataclass
class DyingRunners:
    """A provisioner whose runners exit at once, before they ever register (the fault)."""

    model: str = MODEL
    asked: list[str] = field(default_factory=list)

    def start(self, count: int) -> list[str]:
        names = [f"r{len(self.asked) + i}" for i in range(count)]
        self.asked += names
        return names

    def stop(self, runner: Runner) -> bool:
        return False

    def list(self) -> list[str]:
        return []

    def exit_reason(self, name: str) -> str | None:
        return f"exited with status 1: OSError: no checkpoint at /models/{name}"


def test_starts_back_off_once_runners_keep_dying_before_they_are_warm(
        store: SQLiteStore) -> None:
    clock, provisioner = ManualClock(), DyingRunners()
    controller = PoolController(store, provisioner, AutoscaleConfig(min_runners=1, max_runners=2),
                                {t.name: t for t in DEFAULT_TIERS}, clock, "replica-1")
    reasons = []
    for _ in range(6):  # a step a second
        decision = controller.step()
        assert decision is not None
        reasons.append(decision.reason)
        clock.at += 1
    # Three starts die, then no more starts until the back-off ends.
    assert len(provisioner.asked) == 3
    assert reasons[3:] == ["start_backoff"] * 3
    latest = store.pool_decisions(model=MODEL, limit=1)[0]
    assert (latest.reason, latest.signals["failed_starts_in_a_row"]) == ("start_backoff", 3)
    clock.at += START_BACKOFF_S
    controller.step()  # the back-off is over: one more try...
    clock.at += 1
    controller.step()  # ...which dies too: the next pause is twice as long
    assert len(provisioner.asked) == 4
    clock.at += START_BACKOFF_S + 1
    assert controller.step().reason == "start_backoff"  # type: ignore[union-attr]
    clock.at += START_BACKOFF_S
    controller.step()
    assert len(provisioner.asked) == 5
