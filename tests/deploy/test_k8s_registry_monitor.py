"""`deploy registry` lets Prometheus scrape the registry server's /metrics, as `deploy k8s` does
for the inference server: a ServiceMonitor, and a NetworkPolicy door for its namespace."""

from __future__ import annotations

from typing import Any

from modelyard.deploy import RegistryOptions, registry_manifests
from modelyard.deploy._k8s_objects import Placement


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def test_the_registry_server_is_scraped_from_the_monitoring_namespace() -> None:
    placement = Placement(monitoring_namespace="observability", monitor_labels={"release": "kps"})
    objects = registry_manifests(RegistryOptions(store_url="s3://models/yard", placement=placement))
    selector = _kind(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    monitor = _kind(objects, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"] == selector
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "kps"
    peers = _kind(objects, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    door = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
    assert door in peers


def test_no_monitoring_namespace_opens_no_door() -> None:
    placement = Placement(monitoring_namespace=None)
    objects = registry_manifests(RegistryOptions(store_url="s3://models/yard", placement=placement))
    peers = _kind(objects, "NetworkPolicy")["spec"]["ingress"][0]["from"]
    assert all("namespaceSelector" not in peer for peer in peers)
