"""`modelyard deploy registry`: the registry server on PostgreSQL and S3 (Deployment, Service,
migration Job, PodDisruptionBudget, NetworkPolicy, ServiceMonitor).

Secrets are referenced by name (`secretKeyRef`), never written: the operator creates them.
Prometheus scrapes the server's `/metrics` (open, as the inference server's) from the
monitoring namespace, which the NetworkPolicy lets in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.__about__ import __version__
from modelyard.deploy import _k8s_objects as k
from modelyard.deploy._k8s_names import check_image, check_label, check_quantity, check_secret_name
from modelyard.deploy._k8s_serving import DRAIN_SECONDS
from modelyard.errors import ConfigurationError

DATABASE_KEY = "database-url"
S3_KEYS = {"MODELYARD_S3_ACCESS_KEY_ID": "access-key-id",
           "MODELYARD_S3_SECRET_ACCESS_KEY": "secret-access-key"}  # fmt: skip
SERVER_SECRET_KEY = "secret-key"


@dataclass(frozen=True)
class RegistryOptions:
    """The registry server's image, scale, and where its database, blobs and secrets are.

    >>> RegistryOptions(store_url="s3://models/yard", s3_endpoint="http://minio:9000")
    """

    store_url: str
    name: str = "modelyard-registry"
    image: str = f"modelyard/modelyard:{__version__}"
    replicas: int = 2
    database_secret: str = "modelyard-database"
    s3_secret: str = "modelyard-s3"
    server_secret: str = "modelyard-server"
    s3_endpoint: str | None = None
    cpu: str = "250m"
    memory: str = "512Mi"
    placement: k.Placement = field(default_factory=k.Placement)


def _secret(variable: str, secret: str, key: str) -> k.Obj:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def environment(options: RegistryOptions) -> list[k.Obj]:
    """The server's settings: plain values, and secretKeyRefs for the database URL (it holds a
    password), the S3 keys and the server secret that keys the audit chain."""
    env = [{"name": "MODELYARD_HOME", "value": f"{k.HOME}/.modelyard"},
           {"name": "MODELYARD_AUTH", "value": "true"},
           _secret("MODELYARD_DATABASE_URL", options.database_secret, DATABASE_KEY),
           {"name": "MODELYARD_STORE_URL", "value": options.store_url}]  # fmt: skip
    if options.s3_endpoint:
        env.append({"name": "MODELYARD_S3_ENDPOINT_URL", "value": options.s3_endpoint})
    env += [_secret(variable, options.s3_secret, key) for variable, key in S3_KEYS.items()]
    env.append(_secret("MODELYARD_SECRET_KEY", options.server_secret, SERVER_SECRET_KEY))
    return env


def check_registry_options(options: RegistryOptions) -> None:
    """Refuse names, URLs and sizes that cannot work."""
    check_label(options.name, what="--name")
    if len(options.name) > 55:  # room for the Job's `-migrate`
        raise ConfigurationError("--name: at most 55 characters")
    check_image(options.image)
    for what, secret in (("--database-secret", options.database_secret),
                         ("--s3-secret", options.s3_secret),
                         ("--server-secret", options.server_secret)):  # fmt: skip
        check_secret_name(secret, what=what)
    if not options.store_url.startswith("s3://") or any(c.isspace() for c in options.store_url):
        raise ConfigurationError(
            f"--store-url {options.store_url[:80]!r}: expected s3://BUCKET/PREFIX"
        )
    if options.s3_endpoint and not options.s3_endpoint.startswith(("http://", "https://")):
        raise ConfigurationError("--s3-endpoint must be an http:// or https:// URL")
    if options.replicas < 1:
        raise ConfigurationError("--replicas must be >= 1")
    check_quantity(options.cpu, what="--cpu")
    check_quantity(options.memory, what="--memory")


def _pod(options: RegistryOptions, *, args: list[str], probes: bool, restart: str) -> k.Obj:
    volumes, mounts = k.writable_volumes()
    container: k.Obj = {
        "name": "server" if probes else "migrate", "image": options.image,
        "imagePullPolicy": "IfNotPresent", "command": ["modelyard"], "args": args,
        "env": environment(options),
        "resources": k.resources(cpu=options.cpu, memory=options.memory, cpu_limit=None,
                                 memory_limit=None),
        "securityContext": k.container_security(), "volumeMounts": mounts}  # fmt: skip
    if probes:
        container["ports"] = [{"name": k.PORT_NAME, "containerPort": k.PORT, "protocol": "TCP"}]
        container["startupProbe"] = k.http_get("/health", period=2, failures=60)
        container["readinessProbe"] = k.http_get("/health", period=5, failures=2)
        container["livenessProbe"] = k.http_get("/health", period=10, failures=3)
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": k.PRESTOP_SECONDS}}}
    return {"automountServiceAccountToken": False, "enableServiceLinks": False,
            "restartPolicy": restart, "securityContext": k.pod_security(),
            "terminationGracePeriodSeconds": k.grace_seconds(DRAIN_SECONDS),
            "containers": [container], "volumes": volumes}  # fmt: skip


def registry_manifests(options: RegistryOptions) -> list[k.Obj]:
    """The migration Job, then the server's Deployment, Service, PDB, NetworkPolicy and
    ServiceMonitor.

    >>> print(render_yaml(registry_manifests(RegistryOptions(store_url="s3://models/yard"))))
    """
    check_registry_options(options)
    name, place = options.name, options.placement
    selector = {"app.kubernetes.io/name": "modelyard-registry", "app.kubernetes.io/instance": name}
    labels = {**selector, "app.kubernetes.io/component": "registry-server",
              "app.kubernetes.io/part-of": "modelyard", "app.kubernetes.io/managed-by": "modelyard",
              "app.kubernetes.io/version": __version__}  # fmt: skip
    job_labels = {**labels, "app.kubernetes.io/name": "modelyard-registry-migrate"}
    job = {"apiVersion": "batch/v1", "kind": "Job",
           "metadata": k.metadata(f"{name}-migrate", placement=place, labels=job_labels),
           "spec": {"backoffLimit": 3, "ttlSecondsAfterFinished": 86400,
                    "template": {"metadata": {"labels": job_labels},
                                 "spec": _pod(options, args=["db", "upgrade"], probes=False,
                                              restart="Never")}}}  # fmt: skip
    server_args = ["server", "--host", "0.0.0.0", "--port", str(k.PORT), "--auth"]
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": k.metadata(name, placement=place, labels=labels),
                  "spec": {"replicas": options.replicas, "revisionHistoryLimit": 5,
                           "selector": {"matchLabels": selector},
                           "strategy": {"type": "RollingUpdate",
                                        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                           "template": {"metadata": {"labels": labels},
                                        "spec": _pod(options, args=server_args, probes=True,
                                                     restart="Always")}}}  # fmt: skip
    owner = k.Owner(name, place, labels, selector)
    return [
        job,
        deployment,
        k.service(owner),
        k.disruption_budget(owner),
        k.network_policy(owner),
        k.service_monitor(owner),
    ]
