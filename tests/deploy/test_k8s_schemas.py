"""Every generated object validates: built-in kinds against Kubernetes 1.35-1.37 (strict),
ServingRuntime and InferenceService against KServe v0.20.0's CRDs, ServiceMonitor against
prometheus-operator v0.93.0's (vendored in tests/deploy/data)."""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from modelyard.deploy import (
    Placement,
    RegistryOptions,
    ServingOptions,
    kserve_manifests,
    registry_manifests,
    render_yaml,
    serving_manifests,
)
from tests.deploy._k8s_schemas import crd_validator, validate, version

PLACED = Placement(namespace="models", allow_namespaces=["gateway"], allow_pods={"app": "web"},
                   monitor_labels={"release": "kube-prometheus-stack"})  # fmt: skip
FULL = ServingOptions(replicas=3, max_replicas=9, cpu="1", memory="2Gi", cpu_limit="2",
                      memory_limit="3Gi", image="registry.local/fraud:3",
                      placement=PLACED)  # fmt: skip


def _sets() -> dict[str, list[dict[str, Any]]]:
    v = version("Fraud_Detector")
    return {
        "serving-defaults": serving_manifests(v),
        "serving-full": serving_manifests(v, FULL),
        "kserve-oci": kserve_manifests(v, storage_uri="oci://registry.local/fraud-modelcar:3"),
        "kserve-s3": kserve_manifests(
            v,
            FULL,
            storage_uri="s3://models/fraud/3",
            service_account="s3-reader",
            raw_deployment=True,
        ),  # fmt: skip
        "registry": registry_manifests(RegistryOptions(store_url="s3://models/yard")),
        "registry-full": registry_manifests(
            RegistryOptions(
                store_url="s3://models/yard",
                s3_endpoint="http://minio.storage:9000",
                replicas=3,
                placement=PLACED,
            )
        ),  # fmt: skip
    }


SETS = _sets()
CASES = [(name, obj) for name, objects in SETS.items() for obj in objects]


@pytest.mark.parametrize(("name", "obj"), CASES, ids=[f"{n}-{o['kind']}" for n, o in CASES])
def test_every_object_validates(name: str, obj: dict[str, Any]) -> None:
    validate(obj)


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_yaml_stream_reads_back_as_the_same_objects(name: str) -> None:
    assert list(yaml.safe_load_all(render_yaml(SETS[name]))) == SETS[name]


def test_the_sets_hold_the_kinds_asked_for() -> None:
    kinds = {name: [obj["kind"] for obj in objects] for name, objects in SETS.items()}
    assert kinds["serving-defaults"] == [
        "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
        "NetworkPolicy", "ServiceMonitor"]  # fmt: skip
    assert kinds["kserve-oci"] == ["ServingRuntime", "InferenceService"]
    assert kinds["registry"] == ["Job", "Deployment", "Service", "PodDisruptionBudget",
                                 "NetworkPolicy", "ServiceMonitor"]  # fmt: skip


# The validators themselves must catch mistakes, or the tests above prove nothing.
def test_strict_kubernetes_validation_refuses_an_unknown_field() -> None:
    deployment = copy.deepcopy(SETS["serving-defaults"][0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


@pytest.mark.parametrize(
    ("index", "path", "value"),
    [
        (1, ("spec", "predictor", "model", "modelFormat"), "sklearn"),  # not an object
        (1, ("spec", "predictor", "model", "storageURI"), "s3://x"),  # misspelt: pruned
        (0, ("spec", "protocolVersions"), "v2"),  # a string, not a list
        (0, ("spec", "containers", 0, "ports", 0, "containerPort"), "8080"),  # not an integer
    ],
)
def test_the_kserve_schemas_refuse_a_wrong_field(index: int, path: tuple[str | int, ...],
                                                 value: object) -> None:  # fmt: skip
    obj = copy.deepcopy(SETS["kserve-oci"][index])
    target: Any = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError):
        crd_validator(obj["apiVersion"], obj["kind"]).validate(obj)


def test_the_servicemonitor_schema_refuses_a_bad_scheme() -> None:
    monitor = copy.deepcopy(SETS["serving-defaults"][5])
    monitor["spec"]["endpoints"][0]["scheme"] = "gopher"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
