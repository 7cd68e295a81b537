"""One behaviour for every provisioner: what it starts it lists, what it stops goes away, and
a runner it did not start is not its to stop. Local processes for real; Kubernetes pods
through the official client against a stand-in of the pods API (tests/pool/pods_api.py:
no cluster can be reached here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from stoker.core.model import Runner, RunnerState
from stoker.pool.kubernetes import KubernetesProvisioner
from stoker.pool.local import LocalProvisioner
from stoker.pool.provisioner import Provisioner
from stoker.settings_pool import KubernetesSettings
from tests.pool.pods_api import pods_api_server

MODEL = "remote-m"


def runner_named(name: str) -> Runner:
    return Runner("runner_x", name, MODEL, RunnerState.IDLE, 1, "h", 8, 10, 0.0, 0.0, 0.0)


def k8s_settings(**extra: Any) -> KubernetesSettings:
    return KubernetesSettings(image="ghcr.io/example/stoker:0.1", namespace="stoker",
                              server_url="http://stoker-api.stoker.svc:8420", **extra)


def pods_client(url: str) -> client.CoreV1Api:
    config = client.Configuration()
    config.host = url
    return client.CoreV1Api(client.ApiClient(config))


@pytest.fixture(params=["local", "kubernetes"])
def provisioner(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provisioner]:
    if request.param == "local":
        # Nothing listens at the server URL: the runners keep trying to register.
        local = LocalProvisioner("http://127.0.0.1:9", MODEL, tmp_path, local_model=False)
        yield local
        local.drain(timeout_s=10)
        return
    with pods_api_server() as (url, _):
        yield KubernetesProvisioner(pods_client(url), k8s_settings(), MODEL, "cpu")


def test_what_it_starts_it_lists(provisioner: Provisioner) -> None:
    names = provisioner.start(2)
    assert len(set(names)) == 2
    assert sorted(provisioner.list()) == sorted(names)
    assert len(set(provisioner.start(1)) | set(names)) == 3  # names are never reused


def test_what_it_stops_goes_away_and_a_stranger_is_not_its_to_stop(
        provisioner: Provisioner) -> None:
    first, second = provisioner.start(2)
    assert not provisioner.stop(runner_named("someone-else"))
    assert provisioner.stop(runner_named(first))
    deadline = time.monotonic() + 30
    while provisioner.list() != [second]:
        assert time.monotonic() < deadline, "the stopped runner did not go away"
        time.sleep(0.05)
    assert not provisioner.stop(runner_named(first))
