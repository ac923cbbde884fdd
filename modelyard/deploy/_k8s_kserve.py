"""`modelyard deploy k8s --kserve`: a `ServingRuntime` for modelyard's OIP server and an
`InferenceService` whose predictor names it.

How KServe v0.20 provides the model at `/mnt/models` (read from its code):
- `oci://HOST/REPO:TAG` is a *modelcar*: KServe runs that image as a sidecar whose `/models`
  the server reaches through `/proc/<pid>/root` (shared process namespace), and sets
  `MODEL_INIT_MODE=async` because the folder may appear after the server starts. The image
  must hold the version's files under `/models` and a `sh` (`modelcar.py` writes one). A
  `modelyard push` artifact is not an image and cannot be used here.
- `s3://BUCKET/PREFIX` is downloaded by the storage initializer into `/mnt/models`: the prefix
  must hold the version's folder files (`modelyard.json` at its root).
"""

from __future__ import annotations

import re
import shlex

from modelyard.deploy import _k8s_objects as k
from modelyard.deploy._k8s_names import check_label, check_storage_uri
from modelyard.deploy._k8s_serving import (
    ServingOptions,
    check_options,
    default_image,
    identity,
    server_container,
    version_annotations,
)
from modelyard.errors import ConfigurationError
from modelyard.registry import ModelVersion

MODEL_DIR = "/mnt/models"
# KServe puts the InferenceService's name here; a DNS label, passed as $0 so no shell sees it.
_NAME_TEMPLATE = "{{.Name}}"


def model_format(version: ModelVersion) -> str:
    """The version's flavor as a KServe model format name (checked: it is stored data)."""
    if not version.flavor:
        raise ConfigurationError(f"{version.ref} has no flavor: KServe needs a model format")
    return check_label(re.sub(r"[._]", "-", version.flavor.lower()), what="flavor")


def runtime_command() -> list[str]:
    """Wait for the model folder (a modelcar links it in after the server starts), then serve."""
    serve = ["modelyard", "serve", "--model-dir", MODEL_DIR, "--name", '"$0"', "--host",
             "0.0.0.0", "--port", str(k.PORT), "--insecure"]  # fmt: skip
    quoted = " ".join(part if part == '"$0"' else shlex.quote(part) for part in serve)
    script = f"until [ -e {MODEL_DIR}/modelyard.json ]; do sleep 1; done; exec {quoted}"
    return ["/bin/sh", "-c", script, _NAME_TEMPLATE]


def serving_runtime(version: ModelVersion, options: ServingOptions) -> k.Obj:
    """A `ServingRuntime` (one per flavor, `modelyard-<flavor>`) running the OIP server."""
    fmt = model_format(version)
    name, labels, _ = identity(version, options)
    command = runtime_command()
    container = server_container(image=options.image or default_image(version), args=command[1:],
                                 options=options)  # fmt: skip
    # Knative (serverless mode) accepts one port named http1/h2c or unnamed: use the number.
    container.update(
        name="kserve-container",
        command=command[:1],
        ports=[{"containerPort": k.PORT, "protocol": "TCP"}],
    )
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        container[probe]["httpGet"]["port"] = k.PORT
    volumes, _ = k.writable_volumes()
    # one runtime per flavor serves many versions: no version or model labels on it
    labels = {
        key: value
        for key, value in labels.items()
        if not key.startswith("modelyard.io/") and key != "app.kubernetes.io/version"
    }
    labels["app.kubernetes.io/instance"] = f"modelyard-{fmt}"
    return {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "ServingRuntime",
            "metadata": k.metadata(f"modelyard-{fmt}", placement=options.placement,
                                   labels=labels),
            "spec": {"supportedModelFormats": [{"name": fmt, "autoSelect": False}],
                     "protocolVersions": ["v2"], "multiModel": False,
                     "annotations": {"prometheus.kserve.io/port": str(k.PORT),
                                     "prometheus.kserve.io/path": "/metrics"},
                     "containers": [container], "volumes": volumes}}  # fmt: skip


def inference_service(version: ModelVersion, options: ServingOptions, *, storage_uri: str,
                      service_account: str | None = None, raw: bool = False) -> k.Obj:  # fmt: skip
    """An `InferenceService` for `version`: protocol v2, the modelyard runtime, `storage_uri`."""
    fmt = model_format(version)
    name, labels, _ = identity(version, options)
    model = {"modelFormat": {"name": fmt}, "runtime": f"modelyard-{fmt}", "protocolVersion": "v2",
             "storageUri": check_storage_uri(storage_uri),
             "resources": k.resources(cpu=options.cpu, memory=options.memory,
                                      cpu_limit=options.cpu_limit,
                                      memory_limit=options.memory_limit)}  # fmt: skip
    predictor: k.Obj = {"minReplicas": options.replicas,
                        "maxReplicas": options.max_replicas or options.replicas * 3,
                        "model": model}  # fmt: skip
    if service_account:  # the credentials (S3 keys, image pull secrets) KServe should use
        predictor["serviceAccountName"] = check_label(service_account, what="--service-account")
    annotations = version_annotations(version)
    if raw:  # a plain Deployment, Service and HPA instead of a Knative Service
        annotations["serving.kserve.io/deploymentMode"] = "RawDeployment"
    return {"apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
            "metadata": k.metadata(name, placement=options.placement, labels=labels,
                                   annotations=annotations),
            "spec": {"predictor": predictor}}  # fmt: skip


def kserve_manifests(
    version: ModelVersion,
    options: ServingOptions | None = None,
    *,
    storage_uri: str,
    service_account: str | None = None,
    raw_deployment: bool = False,
) -> list[k.Obj]:
    """The ServingRuntime and InferenceService serving `version` from `storage_uri`.

    >>> kserve_manifests(version, storage_uri="oci://registry.local/fraud-modelcar:3")
    """
    options = options or ServingOptions()
    check_options(options)
    return [serving_runtime(version, options),
            inference_service(version, options, storage_uri=storage_uri,
                              service_account=service_account, raw=raw_deployment)]  # fmt: skip
