"""Kubernetes objects both manifest sets share: metadata, the hardened pod and container
security, a Service, a PodDisruptionBudget, a NetworkPolicy and a ServiceMonitor.

Every object is a plain dict that `yaml.safe_dump` renders; nothing is templated as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

USER_ID = 10001
"""The image's non-root user (`modelyard build` creates it)."""
HOME = "/home/modelyard"
PORT = 8080
PORT_NAME = "http"
PRESTOP_SECONDS = 5
"""How long a stopping pod keeps serving so endpoints drop it before it stops listening."""
GRACE_MARGIN_SECONDS = 5

Obj = dict[str, Any]


@dataclass(frozen=True)
class Placement:
    """Where the objects go and who may reach them."""

    namespace: str | None = None
    allow_namespaces: list[str] = field(default_factory=list)
    allow_pods: dict[str, str] = field(default_factory=dict)
    monitoring_namespace: str | None = "monitoring"
    monitor_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Owner:
    """Whose objects these are: their name, placement, labels and the pods' selector."""

    name: str
    placement: Placement
    labels: Mapping[str, str]
    selector: Mapping[str, str]


def metadata(name: str, *, placement: Placement, labels: Mapping[str, str],
             annotations: Mapping[str, str] | None = None) -> Obj:  # fmt: skip
    """`metadata` with the namespace only when one was given (else `kubectl -n` decides)."""
    meta: Obj = {"name": name}
    if placement.namespace:
        meta["namespace"] = placement.namespace
    meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def grace_seconds(drain_seconds: float) -> int:
    """The pod's termination grace: the preStop pause, the server's drain, and a margin."""
    return PRESTOP_SECONDS + int(-(-drain_seconds // 1)) + GRACE_MARGIN_SECONDS


def pod_security() -> Obj:
    """The pod's security context: non-root, the image's user, RuntimeDefault seccomp."""
    return {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
            "fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip


def container_security() -> Obj:
    """The container's: read-only root, no privilege escalation, every capability dropped."""
    return {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID,
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
            "privileged": False, "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip


def writable_volumes() -> tuple[list[Obj], list[Obj]]:
    """(volumes, mounts): emptyDirs for the home (`MODELYARD_HOME`) and /tmp, the only
    places a read-only root lets the server write."""
    volumes = [{"name": "home", "emptyDir": {"sizeLimit": "1Gi"}},
               {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]  # fmt: skip
    mounts = [{"name": "home", "mountPath": HOME}, {"name": "tmp", "mountPath": "/tmp"}]
    return volumes, mounts


def http_get(path: str, *, period: int, failures: int) -> Obj:
    """An HTTP probe on the named serving port."""
    return {"httpGet": {"path": path, "port": PORT_NAME}, "periodSeconds": period,
            "timeoutSeconds": 3, "failureThreshold": failures}  # fmt: skip


def resources(*, cpu: str, memory: str, cpu_limit: str | None, memory_limit: str | None) -> Obj:
    """Requests always; a memory limit (default: the request); a CPU limit only when asked,
    since CPU limits throttle a latency-bound server."""
    limits = {"memory": memory_limit or memory}
    if cpu_limit:
        limits["cpu"] = cpu_limit
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


def service(owner: Owner) -> Obj:
    """A ClusterIP Service on the serving port."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": metadata(owner.name, placement=owner.placement, labels=owner.labels),
            "spec": {"type": "ClusterIP", "selector": dict(owner.selector),
                     "ports": [{"name": PORT_NAME, "port": PORT, "targetPort": PORT_NAME,
                                "protocol": "TCP"}]}}  # fmt: skip


def disruption_budget(owner: Owner) -> Obj:
    """At most one pod down at a time during voluntary disruptions (node drains)."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": metadata(owner.name, placement=owner.placement, labels=owner.labels),
            "spec": {"maxUnavailable": 1,
                     "selector": {"matchLabels": dict(owner.selector)}}}  # fmt: skip


def network_policy(owner: Owner) -> Obj:
    """Ingress only on the serving port, only from the allowed pods and namespaces (default:
    every pod of the same namespace, and Prometheus' namespace for the scrape)."""
    peers: list[Obj] = [{"podSelector": {"matchLabels": dict(owner.placement.allow_pods)}}
                        if owner.placement.allow_pods else {"podSelector": {}}]  # fmt: skip
    namespaces = [*owner.placement.allow_namespaces]
    if owner.placement.monitoring_namespace:
        namespaces.append(owner.placement.monitoring_namespace)
    peers += [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
              for ns in dict.fromkeys(namespaces)]  # fmt: skip
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(owner.name, placement=owner.placement, labels=owner.labels),
            "spec": {"podSelector": {"matchLabels": dict(owner.selector)},
                     "policyTypes": ["Ingress"],
                     "ingress": [{"from": peers,
                                  "ports": [{"protocol": "TCP", "port": PORT}]}]}}  # fmt: skip


def service_monitor(owner: Owner) -> Obj:
    """A Prometheus-operator ServiceMonitor scraping `/metrics` on the Service's port."""
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
            "metadata": metadata(owner.name, placement=owner.placement,
                                 labels={**owner.labels, **owner.placement.monitor_labels}),
            "spec": {"selector": {"matchLabels": dict(owner.selector)},
                     "endpoints": [{"port": PORT_NAME, "path": "/metrics", "scheme": "http",
                                    "interval": "30s", "scrapeTimeout": "10s"}]}}  # fmt: skip
