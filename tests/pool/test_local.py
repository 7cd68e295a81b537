"""Local runner processes get an environment built from an allow-list: their own model's key
and the runner token, never the server's other secrets."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from stoker.core.model import Runner, RunnerState
from stoker.pool.local import LocalProvisioner, runner_environment
from stoker.runner.loop import PROVIDER_KEY_ENV

SECRETS = {"OTHER_MODEL_KEY": "sk-other-model-7f3a", "STOKER_TOKEN_EVALS": "team-token-1",
           "STOKER_STORE": "postgresql://stoker:hunter2@db/stoker",
           "AWS_SECRET_ACCESS_KEY": "aws-secret-1"}


def test_the_environment_keeps_what_a_runner_needs_and_no_other_secret() -> None:
    parent = {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8",
              "OPENBLAS_CORETYPE": "Haswell", "CUDA_VISIBLE_DEVICES": "0", **SECRETS}
    env = runner_environment(parent, runner_token="rt-1", provider_key="sk-mine")
    assert not set(SECRETS) & set(env)
    assert {k: env[k] for k in ("PATH", "HOME", "LC_ALL", "OPENBLAS_CORETYPE",
                                "CUDA_VISIBLE_DEVICES")} == {k: parent[k] for k in (
        "PATH", "HOME", "LC_ALL", "OPENBLAS_CORETYPE", "CUDA_VISIBLE_DEVICES")}
    assert (env["STOKER_RUNNER_TOKEN"], env[PROVIDER_KEY_ENV]) == ("rt-1", "sk-mine")
    assert env["HF_HUB_OFFLINE"] == "1"


def test_a_started_runner_holds_only_its_own_key(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # Nothing listens there: the runner keeps retrying to register while we read its
    # environment from /proc, then it is stopped.
    pool = LocalProvisioner("http://127.0.0.1:9", "remote-m", tmp_path, runner_token="rt-1",
                     provider_key="sk-mine", local_model=False)
    pool.start(1)
    try:
        (proc,) = pool.processes
        raw = Path(f"/proc/{proc.pid}/environ").read_bytes()
    finally:
        pool.drain(timeout_s=10)
    env = dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)
    assert not set(SECRETS) & set(env)
    assert not any(v in raw.decode() for v in SECRETS.values())
    assert env[PROVIDER_KEY_ENV] == "sk-mine"


def test_the_provisioner_lists_and_stops_the_runners_it_started(tmp_path: Path) -> None:
    pool = LocalProvisioner("http://127.0.0.1:9", "remote-m", tmp_path, local_model=False)
    names = pool.start(2)
    try:
        assert names == ["local-remote-m-0", "local-remote-m-1"]
        assert sorted(pool.list()) == names
        stranger = Runner("runner_x", "someone-else", "remote-m", RunnerState.IDLE, 1, "h",
                          8, 10, 0.0, 0.0, 0.0)
        assert not pool.stop(stranger)
        mine = replace(stranger, name=names[0])
        assert pool.stop(mine)
        deadline = time.monotonic() + 30
        while pool.list() != [names[1]]:
            assert time.monotonic() < deadline, "the stopped runner did not exit"
            time.sleep(0.05)
        assert not pool.stop(mine)  # gone already
        assert pool.start(1) == ["local-remote-m-2"]  # names are never reused
    finally:
        pool.drain(timeout_s=10)
