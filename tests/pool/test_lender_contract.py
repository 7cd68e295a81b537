"""One contract for every ReplicaLender: what it lends it lists, lending again adds nothing, a
replica taken back is given back once its runners are gone (its own runners only), and a
shutdown gives everything back. Run on local runner processes and on runner pods (against the
pods-API stand-in: no cluster can be reached here)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kubernetes_validate
import pytest

from stoker.pool.kubernetes import KubernetesProvisioner
from stoker.pool.lending import LocalReplicaLender, ReplicaLender
from stoker.pool.lending_kubernetes import KubernetesReplicaLender
from stoker.settings_lending import FleetSettings
from tests.pool.pods_api import PodsApi, pods_api_server
from tests.pool.test_kubernetes import K8S_VERSION
from tests.pool.test_provisioner_contract import k8s_settings, pods_client

FLEET = FleetSettings(model="fleet-chat", requests_per_replica=32, reclaim_grace_s=2.0,
                      runners_per_replica=2,
                      replicas={"chat-0": {"url": "http://chat-0.internal:8000"},
                                "chat-1": {"url": "http://chat-1.internal:8000"}})


@pytest.fixture(params=["local", "kubernetes"])
def lender(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ReplicaLender]:
    if request.param == "local":
        # Nothing listens at the server URL: the runners keep trying to register.
        local = LocalReplicaLender("http://127.0.0.1:9", FLEET, tmp_path)
        yield local
        local.give_back_all()
        return
    with pods_api_server() as (url, _):
        yield KubernetesReplicaLender(pods_client(url), k8s_settings(), FLEET, "cpu")


def settle_until(lender: ReplicaLender, done: Callable[[list[str]], bool]) -> None:
    deadline = time.monotonic() + 30
    returned: list[str] = []
    while not done(returned):
        assert time.monotonic() < deadline, "the replica was not given back"
        returned += lender.settle(now=time.time())
        time.sleep(0.05)


def test_what_it_lends_it_lists_and_lending_again_adds_nothing(lender: ReplicaLender) -> None:
    lender.lend("chat-0")
    lender.lend("chat-0")
    assert lender.lent() == ["chat-0"]
    lender.lend("chat-1")
    assert lender.lent() == ["chat-0", "chat-1"]


def test_a_replica_taken_back_is_given_back_once_its_runners_are_gone(
        lender: ReplicaLender) -> None:
    lender.lend("chat-0")
    lender.lend("chat-1")
    lender.reclaim("chat-0", now=time.time())
    settle_until(lender, lambda returned: returned == ["chat-0"])
    assert lender.lent() == ["chat-1"]


def test_a_shutdown_gives_every_replica_back(lender: ReplicaLender) -> None:
    lender.lend("chat-0")
    lender.lend("chat-1")
    lender.give_back_all()
    deadline = time.monotonic() + 30
    while lender.lent():
        assert time.monotonic() < deadline, "runners stayed on lent replicas"
        time.sleep(0.05)


def test_lent_runner_pods_are_valid_name_their_replica_and_drain_within_the_grace() -> None:
    with pods_api_server() as (url, cluster):
        api = pods_client(url)
        lender = KubernetesReplicaLender(api, k8s_settings(), FLEET, "cpu")
        lender.lend("chat-0")
        created = [body for method, _, body in cluster.calls if method == "POST"]
        assert len(created) == FLEET.runners_per_replica
        for body in created:
            assert body is not None
            kubernetes_validate.validate(body, K8S_VERSION, strict=True)
            (container,) = body["spec"]["containers"]
            assert container["args"][-2:] == ["--replica", "chat-0"]
            assert body["metadata"]["labels"]["stoker.dev/replica"] == "chat-0"
            assert body["spec"]["terminationGracePeriodSeconds"] == 2
            key = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
            assert key["STOKER_PROVIDER_API_KEY"] == {
                "name": "stoker-secrets", "key": "provider-key-fleet-chat", "optional": True}
        # The autoscaler's own provisioner of the model never sees (or stops) them.
        autoscaled = KubernetesProvisioner(api, k8s_settings(), FLEET.model, "cpu")
        assert autoscaled.list() == []
        _running(cluster)
        lender.reclaim("chat-0", now=0.0)
        deletes = [path for method, path, _ in cluster.calls if method == "DELETE"]
        assert len(deletes) == 2
        assert all(path.endswith("?gracePeriodSeconds=2") for path in deletes)


def _running(cluster: PodsApi) -> None:
    for name in list(cluster.pods):
        cluster.set_phase(name, "Running")
