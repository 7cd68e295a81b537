"""Lent replicas' runners as pods: the lender a lending fleet uses with
``provisioner: kubernetes``.

Lending a replica creates ``runners_per_replica`` runner pods (``stoker runner --replica
NAME``: their work goes to that replica's OpenAI API; labelled with the replica, under a
component of their own so the autoscaler never counts them). Taking it back deletes them with
the fleet's ``reclaim_grace_s`` as the grace period: the kubelet sends SIGTERM, the runner
finishes its batch in hand and exits, or is killed at the end of the grace; its unfinished
requests go back to the queue when their lease expires. The replica is given back once none
of its pods is left, terminating ones included.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from stoker.pool.kubernetes import KubernetesProvisioner, PodsApi
from stoker.settings_lending import FleetSettings
from stoker.settings_pool import KubernetesSettings

log = logging.getLogger("stoker.pool")


@dataclass
class KubernetesReplicaLender:
    """Runner pods on lent replicas (see the module's docstring)."""

    api: PodsApi
    settings: KubernetesSettings
    fleet: FleetSettings
    runner_class: str
    _pods: dict[str, KubernetesProvisioner] = field(default_factory=dict)
    _reclaiming: set[str] = field(default_factory=set)

    @property
    def grace_s(self) -> int:
        """The pods' grace period: the fleet's reclaim grace, in whole seconds."""
        return max(1, math.ceil(self.fleet.reclaim_grace_s))

    def _pool(self, replica: str) -> KubernetesProvisioner:
        pool = self._pods.get(replica)
        if pool is None:
            pool = KubernetesProvisioner(self.api, self.settings, self.fleet.model,
                                         self.runner_class, replica=replica,
                                         grace_s=self.grace_s)
            self._pods[replica] = pool
        return pool

    def lend(self, replica: str) -> None:
        """Create the replica's runner pods, up to ``runners_per_replica`` not being deleted."""
        self._reclaiming.discard(replica)
        pool = self._pool(replica)
        missing = self.fleet.runners_per_replica - len(pool.list())
        if missing > 0:
            pool.start(missing)

    def reclaim(self, replica: str, *, now: float) -> None:
        """Delete the replica's runner pods with the reclaim grace as their grace period."""
        pool = self._pods.get(replica)
        if pool is None:
            return
        for name in pool.list():
            pool.delete(name, grace_s=self.grace_s)
        self._reclaiming.add(replica)

    def settle(self, *, now: float) -> list[str]:
        """The replicas being taken back whose pods are all gone (the kubelet enforces the
        grace period, so nothing is killed here)."""
        returned = sorted(r for r in self._reclaiming if not self._pods[r].present())
        for replica in returned:
            self._reclaiming.discard(replica)
            del self._pods[replica]
        return returned

    def lent(self) -> list[str]:
        """Replicas with runner pods on them (terminating ones included)."""
        return sorted(r for r, pool in self._pods.items() if pool.present())

    def give_back_all(self) -> None:
        """Delete every lent replica's runner pods (each drains within the grace period)."""
        for replica in list(self._pods):
            self.reclaim(replica, now=0.0)
