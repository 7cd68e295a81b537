"""`stoker serve`: the API and a local pool in one process tree, stopped in the right order.

Ctrl-C (or SIGTERM) first drains the runners, while the API is still up to take their last
results, then stops the API. Nothing accepted is lost: it is in the store.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping

import uvicorn

from stoker.api.app import create_app
from stoker.api.guarded_http import guarded_protocol
from stoker.api.scheduling import build_tiers
from stoker.clock import SystemClock
from stoker.errors import Unavailable
from stoker.pool.controller import PoolController
from stoker.pool.fixed import FixedPool
from stoker.pool.kubernetes import KubernetesProvisioner, kubernetes_pods_api
from stoker.pool.lending import LendingController, LocalReplicaLender, ReplicaLender
from stoker.pool.lending_kubernetes import KubernetesReplicaLender
from stoker.pool.local import LocalProvisioner
from stoker.pool.provisioner import Provisioner
from stoker.runner.backends.tiny_model import create_tiny_model, is_checkpoint
from stoker.settings import TINY_MODEL_NAME, Settings
from stoker.store import Store, open_store

log = logging.getLogger("stoker.serve")


def ensure_default_model(settings: Settings) -> None:
    """Make the tiny model if it is the default model and its checkpoint is missing."""
    name = settings.default_model
    path = settings.model_path(name)
    if name == TINY_MODEL_NAME and not is_checkpoint(path):
        log.info("creating the tiny model at %s", path)
        create_tiny_model(path)


def provider_keys(settings: Settings) -> dict[str, str]:
    """Each remote model's key, read from the environment or the file its config names."""
    keys = {}
    for name, spec in settings.models.items():
        if spec.is_remote:
            key = spec.read_api_key()
            if key is not None:
                keys[name] = key
    return keys


def pod_provisioners(settings: Settings) -> dict[str, Provisioner]:
    """With ``provisioner: kubernetes``, a pod provisioner per autoscaled model."""
    if settings.provisioner != "kubernetes" or settings.kubernetes is None:
        return {}
    api = kubernetes_pods_api()
    return {name: KubernetesProvisioner(api, settings.kubernetes, name, spec.runner_class)
            for name, spec in settings.models.items() if spec.autoscale is not None}


def autoscale_controllers(settings: Settings, store: Store,
                          provisioners: Mapping[str, Provisioner]) -> list[PoolController]:
    """A controller for each model whose pool is autoscaled (see stoker.pool.controller)."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    tiers = build_tiers(settings)
    controllers = []
    for name, spec in settings.models.items():
        scale = spec.autoscale
        if scale is None:
            continue
        controllers.append(PoolController(
            store, provisioners[name], scale.policy_config(), tiers, SystemClock(), holder,
            interval_s=scale.interval_s,
            assumed_completion_tokens=scale.assumed_completion_tokens))
    return controllers


def lending_controllers(settings: Settings, store: Store, url: str, keys: Mapping[str, str],
                        runner_token: str | None) -> list[LendingController]:
    """A lending controller per external fleet (see stoker.pool.lending): its runners are
    pods with ``provisioner: kubernetes``, else processes on this machine."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    pods = settings.kubernetes if settings.provisioner == "kubernetes" else None
    api = kubernetes_pods_api() if pods is not None and settings.lending else None
    controllers = []
    for name, fleet in settings.lending.items():
        lender: ReplicaLender
        if pods is not None and api is not None:
            lender = KubernetesReplicaLender(api, pods, fleet,
                                             settings.models[fleet.model].runner_class)
        else:
            lender = LocalReplicaLender(url, fleet, settings.data_dir / "logs",
                                        runner_token=runner_token,
                                        provider_key=keys.get(fleet.model))
        controllers.append(LendingController(store, name, fleet, lender, SystemClock(),
                                             holder))
    return controllers


def serve(settings: Settings, *, on_ready: threading.Event | None = None,
          stop: threading.Event | None = None) -> None:
    """Run the API and the local pool until SIGINT/SIGTERM (or ``stop``) then drain and exit."""
    ensure_default_model(settings)
    # Provider keys are read first: a missing one stops the start with a clear message.
    keys = provider_keys(settings)
    runner_token = settings.runner_token.get_secret_value() if settings.runner_token else None
    store = open_store(settings.store.get_secret_value() if settings.store else None,
                       sqlite_path=settings.database_path, pool_size=settings.store_pool_size)
    app = create_app(settings, store, SystemClock(), prestart_upload_worker=True)
    # Worker threads validate and store big submissions while the event loop answers every
    # other call; each time the loop wants the GIL back it waits up to this long, and a call
    # takes it back several times. 0.5 ms (the default is 5) keeps that wait off the latency of
    # /healthz and online calls during a big upload, for a few per cent of the upload's speed.
    sys.setswitchinterval(settings.limits.gil_switch_interval_s)
    limits = settings.limits
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning",
                            timeout_graceful_shutdown=5, timeout_keep_alive=limits.keep_alive_s,
                            http=guarded_protocol(header_timeout_s=limits.header_timeout_s,
                                                  body_timeout_s=limits.body_timeout_s))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise Unavailable(f"the API could not start on {settings.host}:{settings.port}")
        time.sleep(0.05)
    url = f"http://{settings.host}:{settings.port}"
    log.info("Stoker API on %s", url)
    local = {name: LocalProvisioner(
        url, name, settings.data_dir / "logs", runner_token=runner_token,
        provider_key=keys.get(name), local_model=not spec.is_remote,
        max_runners=spec.autoscale.max_runners if spec.autoscale else None)
        for name, spec in settings.models.items()
        if (spec.autoscale is not None and settings.provisioner == "local")
        or (spec.autoscale is None and settings.runners_for(name) > 0)}
    provisioners: dict[str, Provisioner] = {**local, **pod_provisioners(settings)}
    controllers = autoscale_controllers(settings, store, provisioners)
    fixed = [FixedPool(store, provisioner, settings.runners_for(name), SystemClock())
             for name, provisioner in local.items() if settings.models[name].autoscale is None]
    stop = stop or threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop_scaling = threading.Event()
    scaling = [threading.Thread(target=c.run, args=(stop_scaling,), name=f"pool-{c.model}",
                                daemon=True) for c in controllers]
    scaling += [threading.Thread(target=f.run, args=(stop_scaling,), name=f"pool-{f.model}",
                                 daemon=True) for f in fixed]
    scaling += [threading.Thread(target=c.run, args=(stop_scaling,), name=f"lending-{c.name}",
                                 daemon=True)
                for c in lending_controllers(settings, store, url, keys, runner_token)]
    try:
        for pool in fixed:
            pool.step()  # its first runners, before the pool is ready
        for t in scaling:
            t.start()
        if on_ready is not None:
            on_ready.set()
        stop.wait()
        stop_scaling.set()
        for t in scaling:
            t.join(timeout=30)
        # Local runners are this process's to drain; pods outlive it (another replica's
        # controller takes the pool over).
        log.info("draining %d runners", sum(len(p.processes) for p in local.values()))
        for provisioner in local.values():
            provisioner.drain(timeout_s=settings.leases.ttl_s + 30)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        store.close()
    log.info("stopped")
