"""The Kubernetes manifests are valid: every object against the Kubernetes schemas (strict:
an unknown field is an error), the KEDA ScaledObject against its CRD's fields, every file a
kustomization names exists, the configs in them are configs Stoker accepts, and the API's
role allows what its provisioner does. No cluster can be reached here; README says how to try
them on kind or k3s."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from stoker.pool.kubernetes import runner_pod
from stoker.settings import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
K8S_VERSION = "1.30.0"
SCALED_OBJECT = json.loads((Path(__file__).parent / "keda_scaledobject.schema.json").read_text())


def manifests() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path, doc


def kinds() -> dict[str, dict[str, Any]]:
    return {f"{p.parent.name}/{d['kind']}/{d['metadata']['name']}": d for p, d in manifests()}


@pytest.mark.parametrize(("where", "doc"), sorted(kinds().items()))
def test_every_manifest_is_valid(where: str, doc: dict[str, Any]) -> None:
    if doc["kind"] == "ScaledObject":
        jsonschema.validate(doc, SCALED_OBJECT)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_a_typo_is_caught() -> None:
    deployment = kinds()["base/Deployment/stoker-api"]
    broken = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    scaled = kinds()["keda/ScaledObject/stoker-runner-llm"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**scaled, "spec": {**scaled["spec"], "maxReplicas": 4}},
                            SCALED_OBJECT)


def test_every_file_a_kustomization_names_exists() -> None:
    for kustomization in DEPLOY.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        named = spec.get("resources", []) + [p["path"] for p in spec.get("patches", [])]
        assert named
        for item in named:
            assert (kustomization.parent / item).exists(), f"{kustomization}: {item}"


def config_of(configmap: dict[str, Any], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("STOKER_TEAM_EVALS", "t")
    path = tmp_path / "stoker.yaml"
    path.write_text(configmap["data"]["stoker.yaml"])
    return load_settings(path, runner_token="r", operator_token="o")


def test_the_configs_are_configs_stoker_accepts(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    base = config_of(kinds()["base/ConfigMap/stoker-config"], tmp_path, monkeypatch)
    assert base.provisioner == "kubernetes"
    assert base.kubernetes is not None
    assert base.models["llm"].autoscale is not None
    # The pods the provisioner would make from it are valid.
    pod = runner_pod(base.kubernetes, "llm", base.models["llm"].runner_class, "stoker-runner-x")
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    keda = config_of(kinds()["keda/ConfigMap/stoker-config"], tmp_path, monkeypatch)
    assert keda.models["llm"].autoscale is None  # KEDA sizes that pool, not Stoker
    assert keda.runners_for("llm") == 0


def test_the_api_may_do_what_its_provisioner_does_and_keda_targets_the_runners() -> None:
    docs = kinds()
    (rule,) = docs["base/Role/stoker-runner-pods"]["rules"]
    assert rule["resources"] == ["pods"]
    assert {"create", "delete", "list"} <= set(rule["verbs"])
    api = docs["base/Deployment/stoker-api"]["spec"]["template"]["spec"]
    assert api["serviceAccountName"] == docs["base/ServiceAccount/stoker-api"]["metadata"]["name"]
    target = docs["keda/ScaledObject/stoker-runner-llm"]["spec"]["scaleTargetRef"]["name"]
    assert f"keda/Deployment/{target}" in docs
