"""What the Kubernetes provisioner asks the cluster for: a valid Pod (checked against the
Kubernetes schemas) with its runner class's GPU and node selector and the runner token from a
Secret; a delete with the drain's grace period; exited pods handled as the controller needs.
Against the pods-API stand-in (no cluster can be reached here)."""

from __future__ import annotations

import kubernetes_validate

from stoker.pool.kubernetes import KubernetesProvisioner, label_value, runner_pod
from stoker.settings_pool import RunnerPodSettings
from tests.pool.pods_api import pods_api_server
from tests.pool.test_provisioner_contract import k8s_settings, pods_client, runner_named

L4 = RunnerPodSettings(node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
                       gpus=1, cpu="4", memory="16Gi")
K8S_VERSION = "1.30.0"


def test_a_runner_pod_is_valid_and_placed_by_its_runner_class() -> None:
    settings = k8s_settings(runner_classes={"l4": L4}, service_account="stoker-runner",
                            models_claim="stoker-models")
    pod = runner_pod(settings, "Llama-3.1 8B", "l4", "stoker-runner-llama-3-1-8b-abc123")
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "1", "memory": "16Gi"},
                                      "requests": {"cpu": "4", "memory": "16Gi"}}
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert (spec["restartPolicy"], spec["serviceAccountName"]) == ("Never", "stoker-runner")
    assert container["args"][-4:] == ["--model", "Llama-3.1 8B", "--name",
                                      "stoker-runner-llama-3-1-8b-abc123"]
    assert spec["volumes"][0]["persistentVolumeClaim"] == {"claimName": "stoker-models",
                                                           "readOnly": True}
    assert container["volumeMounts"][0]["mountPath"] == "/models"
    (token,) = container["env"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "stoker-secrets",
                                                  "key": "runner-token"}
    assert pod["metadata"]["labels"]["stoker.dev/model"] == label_value("Llama-3.1 8B")
    cpu_only = runner_pod(settings, "tiny", "cpu", "stoker-runner-tiny-1")
    kubernetes_validate.validate(cpu_only, K8S_VERSION, strict=True)
    assert "nodeSelector" not in cpu_only["spec"]
    assert cpu_only["spec"]["containers"][0]["resources"] == {}


def test_pods_are_created_and_deleted_as_the_controller_asks() -> None:
    with pods_api_server() as (url, cluster):
        pods = KubernetesProvisioner(pods_client(url), k8s_settings(runner_classes={"l4": L4},
                                     termination_grace_period_s=600), "llm", "l4")
        (name,) = pods.start(1)
        method, path, body = cluster.calls[0]
        assert (method, path) == ("POST", "/api/v1/namespaces/stoker/pods")
        assert body is not None
        kubernetes_validate.validate(body, K8S_VERSION, strict=True)
        assert body["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        cluster.set_phase(name, "Running")
        assert pods.stop(runner_named(name))
        method, path, _ = cluster.calls[-1]
        # Time to drain the batch in hand.
        assert (method, path) == ("DELETE", f"/api/v1/namespaces/stoker/pods/{name}"
                                            "?gracePeriodSeconds=600")


def test_a_failed_runner_pod_is_kept_for_its_logs_a_drained_one_is_cleaned_up() -> None:
    with pods_api_server() as (url, cluster):
        pods = KubernetesProvisioner(pods_client(url), k8s_settings(), "llm", "cpu")
        failed, drained, running = pods.start(3)
        cluster.set_phase(failed, "Failed", reason="Evicted",
                          message="The node was low on resource: memory.")
        cluster.set_phase(drained, "Succeeded")
        cluster.set_phase(running, "Running")
        assert pods.list() == [running]
        assert set(cluster.pods) == {failed, running}
        # Why it failed, for the pool's log.
        assert pods.exit_reason(failed) == \
            "pod failed; Evicted; The node was low on resource: memory."
        assert pods.exit_reason(running) is None


def test_runner_pods_mount_the_command_checkpoints_read_write_when_there_is_a_claim() -> None:
    settings = k8s_settings(models_claim="stoker-models", checkpoints_claim="stoker-checkpoints")
    pod = runner_pod(settings, "llm", "cpu", "stoker-runner-llm-1")
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    volumes = {v["name"]: v["persistentVolumeClaim"] for v in pod["spec"]["volumes"]}
    assert volumes == {"models": {"claimName": "stoker-models", "readOnly": True},
                       "checkpoints": {"claimName": "stoker-checkpoints"}}
    mounts = {m["name"]: m for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert mounts["checkpoints"] == {"name": "checkpoints", "mountPath": "/checkpoints"}
    # A lent replica's runners run no commands: no checkpoints there.
    lent = runner_pod(settings, "llm", "cpu", "stoker-lent-chat-0-1", replica="chat-0")
    assert [v["name"] for v in lent["spec"]["volumes"]] == ["models"]
