"""`modelyard deploy k8s`: a version served by its image on Kubernetes (Deployment, Service,
HorizontalPodAutoscaler, PodDisruptionBudget, NetworkPolicy, ServiceMonitor).

The image is what `modelyard build` makes: `modelyard serve --model-dir /models` as uid 10001.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelyard.__about__ import __version__
from modelyard.deploy import _k8s_objects as k
from modelyard.deploy._k8s_names import (
    app_name,
    check_digest,
    check_image,
    check_label,
    check_quantity,
    label_value,
)
from modelyard.errors import ConfigurationError
from modelyard.registry import ModelVersion

DRAIN_SECONDS = 30.0
"""How long `modelyard serve` (and `modelyard server`) drain at SIGTERM; a test keeps it equal
to the servers' own constant, which this layer may not import."""


@dataclass(frozen=True)
class ServingOptions:
    """How a version is run: image, scale, resources, placement. Defaults suit a small model.

    >>> ServingOptions(replicas=3, cpu="1", memory="2Gi")
    """

    image: str | None = None
    name: str | None = None
    replicas: int = 2
    max_replicas: int | None = None
    cpu_target: int = 70
    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str | None = None
    memory_limit: str | None = None
    placement: k.Placement = field(default_factory=k.Placement)
    drain_seconds: float = DRAIN_SECONDS


def default_image(version: ModelVersion) -> str:
    """The tag to build for a version by convention: `modelyard/<name>:<number>`.

    >>> default_image(version)   # fraud:3
    'modelyard/fraud:3'
    """
    try:
        return f"modelyard/{app_name(version.name)}:{version.number}"
    except ConfigurationError:
        raise ConfigurationError(
            f"model name {version.name[:80]!r} cannot name an image; give one with --image"
        ) from None


def identity(
    version: ModelVersion, options: ServingOptions
) -> tuple[str, dict[str, str], dict[str, str]]:
    """(object name, labels, selector) for a version's objects. The selector leaves out the
    version so a new version rolls the same Deployment (its selector is immutable)."""
    name = check_label(options.name, what="--name") if options.name else app_name(version.name)
    selector = {"app.kubernetes.io/name": "modelyard-model", "app.kubernetes.io/instance": name}
    labels = {**selector, "app.kubernetes.io/component": "model-server",
              "app.kubernetes.io/part-of": "modelyard", "app.kubernetes.io/managed-by": "modelyard",
              "app.kubernetes.io/version": str(version.number),
              "modelyard.io/version": str(version.number)}  # fmt: skip
    model = label_value(version.name)
    if model:  # else only the `modelyard.io/ref` annotation names it
        labels["modelyard.io/model"] = model
    return name, labels, selector


def version_annotations(version: ModelVersion) -> dict[str, str]:
    """The exact version served: its reference and manifest digest (checked, never trusted)."""
    return {"modelyard.io/ref": version.ref,
            "modelyard.io/manifest-digest": check_digest(version.manifest_digest),
            "modelyard.io/generator": f"modelyard {__version__}"}  # fmt: skip


def check_options(options: ServingOptions) -> None:
    """Refuse scale and resource settings that cannot work."""
    if options.replicas < 1 or (options.max_replicas or options.replicas) < options.replicas:
        raise ConfigurationError("--replicas must be >= 1 and --max-replicas >= --replicas")
    if not 1 <= options.cpu_target <= 100:
        raise ConfigurationError("--cpu-target is a percentage, 1-100")
    quantities = {"--cpu": options.cpu, "--memory": options.memory,
                  "--cpu-limit": options.cpu_limit,
                  "--memory-limit": options.memory_limit}  # fmt: skip
    for what, value in quantities.items():
        if value is not None:
            check_quantity(value, what=what)


def server_container(*, image: str, args: list[str], options: ServingOptions) -> k.Obj:
    """The serving container: OIP probes, resources, hardened, a preStop pause before the drain."""
    _, mounts = k.writable_volumes()
    return {"name": "server", "image": check_image(image), "imagePullPolicy": "IfNotPresent",
            "command": ["modelyard"], "args": args,
            "ports": [{"name": k.PORT_NAME, "containerPort": k.PORT, "protocol": "TCP"}],
            "env": [{"name": "MODELYARD_HOME", "value": f"{k.HOME}/.modelyard"},
                    {"name": "TMPDIR", "value": "/tmp"}],
            "startupProbe": k.http_get("/v2/health/ready", period=5, failures=120),
            "readinessProbe": k.http_get("/v2/health/ready", period=5, failures=2),
            "livenessProbe": k.http_get("/v2/health/live", period=10, failures=3),
            "resources": k.resources(cpu=options.cpu, memory=options.memory,
                                     cpu_limit=options.cpu_limit,
                                     memory_limit=options.memory_limit),
            "securityContext": k.container_security(), "volumeMounts": mounts,
            "lifecycle": {"preStop": {"sleep": {"seconds": k.PRESTOP_SECONDS}}}}  # fmt: skip


def deployment(version: ModelVersion, options: ServingOptions) -> k.Obj:
    """The Deployment running the version's image."""
    name, labels, selector = identity(version, options)
    annotations = version_annotations(version)
    scrape = {"prometheus.io/scrape": "true", "prometheus.io/port": str(k.PORT),
              "prometheus.io/path": "/metrics"}  # fmt: skip
    args = ["serve", "--model-dir", "/models", "--host", "0.0.0.0", "--port", str(k.PORT),
            "--insecure"]  # fmt: skip  # the NetworkPolicy decides who reaches it
    volumes, _ = k.writable_volumes()
    image = options.image or default_image(version)
    pod = {"automountServiceAccountToken": False,
           "enableServiceLinks": False, "securityContext": k.pod_security(),
           "terminationGracePeriodSeconds": k.grace_seconds(options.drain_seconds),
           "containers": [server_container(image=image, args=args, options=options)],
           "volumes": volumes}  # fmt: skip
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": k.metadata(name, placement=options.placement, labels=labels,
                                   annotations=annotations),
            "spec": {"replicas": options.replicas, "revisionHistoryLimit": 5,
                     "selector": {"matchLabels": selector},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": {"metadata": {"labels": labels,
                                               "annotations": {**annotations, **scrape}},
                                  "spec": pod}}}  # fmt: skip


def autoscaler(version: ModelVersion, options: ServingOptions) -> k.Obj:
    """autoscaling/v2 on CPU utilisation, from `replicas` up to `max_replicas` (default 3x)."""
    name, labels, _ = identity(version, options)
    metric = {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": options.cpu_target}}}  # fmt: skip
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": k.metadata(name, placement=options.placement, labels=labels),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": options.replicas,
                     "maxReplicas": options.max_replicas or options.replicas * 3,
                     "metrics": [metric]}}  # fmt: skip


def serving_manifests(version: ModelVersion, options: ServingOptions | None = None) -> list[k.Obj]:
    """Every object that runs `version` from its image, in the order to apply them.

    >>> version = yard.get_version("fraud@production")
    >>> objects = serving_manifests(version, ServingOptions(replicas=3))
    >>> print(render_yaml(objects))
    """
    options = options or ServingOptions()
    check_options(options)
    name, labels, selector = identity(version, options)
    owner = k.Owner(name, options.placement, labels, selector)
    return [deployment(version, options), k.service(owner), autoscaler(version, options),
            k.disruption_budget(owner), k.network_policy(owner),
            k.service_monitor(owner)]  # fmt: skip
