"""Runner pods on Kubernetes, through the official client: one pod per runner.

The autoscaler's controller is the one that sizes the pool, so runners are plain pods (no
Deployment whose own controller would fight it): ``start`` creates pods from the model's
template (image, GPU request and node selector of its runner class, the runner token from a
Secret), ``stop`` deletes one pod (the kubelet's SIGTERM makes the runner drain its batch
within the grace period), and ``list`` reads the pods by label. A pod registers under its
own name, so a runner in the store and its pod are matched by name. A runner that drained
and exited is deleted as it is seen; one that failed is kept for its logs (``restartPolicy:
Never``: a crashing runner is the controller's to notice and back off from, not the kubelet's
to restart for ever).
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any, Protocol

from stoker.core.model import Runner
from stoker.settings_pool import KubernetesSettings, RunnerPodSettings

log = logging.getLogger("stoker.pool")

#: Labels every runner pod carries.
APP_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
MODEL_LABEL = "stoker.dev/model"
#: A lent replica's runners carry its name, and a component of their own (the autoscaler's
#: provisioner of the same model never counts or stops them).
REPLICA_LABEL = "stoker.dev/replica"
LENT_COMPONENT = "lent-runner"
LIVE_PHASES = frozenset({"Pending", "Running"})


class PodsApi(Protocol):
    """What the provisioner uses of ``kubernetes.client.CoreV1Api``."""

    def create_namespaced_pod(self, namespace: str, body: Any) -> Any: ...

    def delete_namespaced_pod(self, name: str, namespace: str, **kwargs: Any) -> Any: ...

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any: ...


def label_value(text: str) -> str:
    """``text`` as a valid label value / DNS-1123 fragment (lower case, ``-`` for the rest)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:40].strip("-") or "model"


def runner_pod(settings: KubernetesSettings, model: str, runner_class: str,
               name: str, *, replica: str | None = None,
               grace_s: int | None = None) -> dict[str, Any]:
    """The manifest of one runner pod of ``model``; with ``replica``, a runner on a lent
    replica of a lending fleet (its work goes to that replica's API, its provider key, if the
    model has one, from the Secret's ``provider-key-<model>``), given ``grace_s`` to drain."""
    placement = settings.runner_classes.get(runner_class, RunnerPodSettings(gpus=0))
    limits: dict[str, str] = {}
    requests: dict[str, str] = {}
    if placement.gpus:
        limits[placement.gpu_resource] = str(placement.gpus)
    if placement.cpu:
        requests["cpu"] = placement.cpu
    if placement.memory:
        requests["memory"] = limits["memory"] = placement.memory
    container: dict[str, Any] = {
        "name": "runner",
        "image": settings.image,
        "args": ["runner", "--server", settings.server_url, "--model", model, "--name", name],
        "env": [{"name": "STOKER_RUNNER_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": settings.runner_token_secret, "key": "runner-token"}}}],
        "resources": {k: v for k, v in (("limits", limits), ("requests", requests)) if v},
    }
    labels = {APP_LABEL: "stoker", COMPONENT_LABEL: "runner", MODEL_LABEL: label_value(model)}
    if replica is not None:
        container["args"] += ["--replica", replica]
        container["env"].append({"name": "STOKER_PROVIDER_API_KEY", "valueFrom": {
            "secretKeyRef": {"name": settings.runner_token_secret,
                             "key": f"provider-key-{label_value(model)}", "optional": True}}})
        labels.update({COMPONENT_LABEL: LENT_COMPONENT, REPLICA_LABEL: label_value(replica)})
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": grace_s or settings.termination_grace_period_s,
        "containers": [container],
    }
    if placement.node_selector:
        spec["nodeSelector"] = dict(placement.node_selector)
    if settings.service_account:
        spec["serviceAccountName"] = settings.service_account
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if settings.models_claim:
        volumes.append({"name": "models", "persistentVolumeClaim": {
            "claimName": settings.models_claim, "readOnly": True}})
        mounts.append({"name": "models", "mountPath": settings.models_mount_path,
                       "readOnly": True})
    if settings.checkpoints_claim and replica is None:
        # Command jobs' checkpoints: written by one pod's run, read by the next run's pod.
        volumes.append({"name": "checkpoints", "persistentVolumeClaim": {
            "claimName": settings.checkpoints_claim}})
        mounts.append({"name": "checkpoints", "mountPath": settings.checkpoints_mount_path})
    if volumes:
        spec["volumes"], container["volumeMounts"] = volumes, mounts
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": settings.namespace, "labels": labels},
        "spec": spec,
    }


class KubernetesProvisioner:
    """A model's runners as pods in one namespace (see the module's docstring)."""

    def __init__(self, api: PodsApi, settings: KubernetesSettings, model: str,
                 runner_class: str, *, replica: str | None = None,
                 grace_s: int | None = None) -> None:
        self.model = model
        self._api, self._settings, self._runner_class = api, settings, runner_class
        self._replica, self._grace_s = replica, grace_s
        self._selector = (f"{COMPONENT_LABEL}=runner,{MODEL_LABEL}={label_value(model)}"
                          if replica is None else
                          f"{COMPONENT_LABEL}={LENT_COMPONENT},{MODEL_LABEL}="
                          f"{label_value(model)},{REPLICA_LABEL}={label_value(replica)}")
        self._exits: dict[str, str] = {}

    def start(self, count: int) -> list[str]:
        """Create ``count`` runner pods; their names."""
        stem = (f"stoker-runner-{label_value(self.model)}" if self._replica is None
                else f"stoker-lent-{label_value(self._replica)[:30].strip('-')}")
        names = []
        for _ in range(count):
            name = f"{stem}-{secrets.token_hex(3)}"
            body = runner_pod(self._settings, self.model, self._runner_class, name,
                              replica=self._replica, grace_s=self._grace_s)
            self._api.create_namespaced_pod(self._settings.namespace, body)
            log.info("created runner pod %s", name)
            names.append(name)
        return names

    def stop(self, runner: Runner) -> bool:
        """Delete the runner's pod (it drains within the grace period); False if it is not
        one of this pool's live pods."""
        if runner.name not in self.list():
            return False
        self._api.delete_namespaced_pod(
            runner.name, self._settings.namespace,
            grace_period_seconds=self._settings.termination_grace_period_s)
        log.info("deleted runner pod %s", runner.name)
        return True

    def delete(self, name: str, *, grace_s: int) -> None:
        """Delete a pod: its runner gets SIGTERM (a drain) and is killed after ``grace_s``."""
        self._api.delete_namespaced_pod(name, self._settings.namespace,
                                        grace_period_seconds=grace_s)
        log.info("deleted runner pod %s (grace %ds)", name, grace_s)

    def present(self) -> list[str]:
        """The pool's pods still pending or running, those being deleted included (a
        terminating pod still holds its node until its runner has exited)."""
        pods = self._api.list_namespaced_pod(self._settings.namespace,
                                             label_selector=self._selector)
        return [p.metadata.name for p in pods.items
                if (p.status.phase if p.status else None) in LIVE_PHASES]

    def list(self) -> list[str]:
        """The pool's pods still pending or running (and not being deleted); pods that
        drained and exited are deleted on the way."""
        pods = self._api.list_namespaced_pod(self._settings.namespace,
                                             label_selector=self._selector)
        alive = []
        for pod in pods.items:
            name, phase = pod.metadata.name, pod.status.phase if pod.status else None
            if phase in LIVE_PHASES and pod.metadata.deletion_timestamp is None:
                alive.append(name)
            elif phase == "Succeeded":
                self._api.delete_namespaced_pod(name, self._settings.namespace)
            elif phase == "Failed":
                status = pod.status
                self._exits[name] = "; ".join(
                    x for x in ("pod failed", status.reason, status.message) if x)
        return alive

    def exit_reason(self, name: str) -> str | None:
        """A failed pod's reason and message, as the kubelet reported them."""
        return self._exits.get(name)


def kubernetes_pods_api() -> PodsApi:
    """The cluster's pods API: in-cluster credentials when running in a pod, else the
    local kubeconfig (for trying it from a workstation)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    api: PodsApi = client.CoreV1Api()
    return api
