"""`modelyard deploy k8s|registry` as a user runs them, on a real registered version; the
modelcar context is linted and built with podman, and its files are reached the way KServe's
modelcar sidecar links them (`/proc/<pid>/root/models`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.cli import app
from tests.conftest import service_env
from tests.deploy._images import iris_data
from tests.deploy._k8s_schemas import validate


@pytest.fixture(autouse=True)
def _plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL", "MODELYARD_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    features, labels = iris_data()
    model = LogisticRegression(max_iter=300).fit(features, labels)
    with Yard(Settings(home=tmp_path / "home", user="ana")) as yard:
        yard.log_model(model, name="Fraud_Detector", input_example=features[:5])
    yield tmp_path / "home"


def run(home: Path, *args: str) -> tuple[int, str, str]:
    env = {"MODELYARD_HOME": str(home), "MODELYARD_USER": "ana"}
    result = CliRunner().invoke(app, ["deploy", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_k8s_writes_one_valid_file_per_object(home: Path, tmp_path: Path) -> None:
    code, _, err = run(home, "k8s", "Fraud_Detector:1", "--replicas", "3", "--namespace",
                       "models", "-o", str(tmp_path / "out"))  # fmt: skip
    assert code == 0, err
    files = sorted((tmp_path / "out").iterdir())
    assert [f.name for f in files] == [
        "01-deployment-fraud-detector.yaml", "02-service-fraud-detector.yaml",
        "03-horizontalpodautoscaler-fraud-detector.yaml",
        "04-poddisruptionbudget-fraud-detector.yaml", "05-networkpolicy-fraud-detector.yaml",
        "06-servicemonitor-fraud-detector.yaml"]  # fmt: skip
    for path in files:
        obj = yaml.safe_load(path.read_text())
        assert obj["metadata"]["namespace"] == "models"
        validate(obj)
    deployment = yaml.safe_load(files[0].read_text())
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "modelyard/fraud-detector:1"
    )  # what `modelyard build --tag` is told to tag by convention


def test_kserve_needs_a_storage_uri(home: Path) -> None:
    code, _, err = run(home, "k8s", "Fraud_Detector:1", "--kserve")
    assert code != 0 and "--storage-uri" in err


def test_a_bad_option_is_one_clear_line(home: Path) -> None:
    code, out, err = run(home, "k8s", "Fraud_Detector:1", "--namespace", "Prod_NS")
    assert code != 0 and "Prod_NS" in err and "DNS-1123" in err and out == ""


def test_registry_writes_a_stream_with_no_secret(home: Path) -> None:
    code, out, err = run(home, "registry", "--store-url", "s3://models/yard", "--s3-endpoint",
                         "http://minio.storage:9000")  # fmt: skip
    assert code == 0, err
    objects = list(yaml.safe_load_all(out))
    assert [obj["kind"] for obj in objects][:2] == ["Job", "Deployment"]
    for obj in objects:
        validate(obj)
    assert "Secret" not in {obj["kind"] for obj in objects}


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINERS_CONF": service_env("CONTAINERS_CONF")}
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_the_modelcar_context_builds_an_image_kserve_can_link(home: Path, tmp_path: Path) -> None:
    base = service_env("MODELYARD_TEST_CONTAINER_BASE")  # any image with sh, ln, sleep
    context = tmp_path / "modelcar"
    code, out, err = run(home, "k8s", "Fraud_Detector:1", "--kserve", "--storage-uri",
                         "oci://registry.local/fraud-modelcar:1", "--modelcar", str(context),
                         "--modelcar-base", base)  # fmt: skip
    assert code == 0, err
    assert [o["kind"] for o in yaml.safe_load_all(out)] == ["ServingRuntime", "InferenceService"]
    assert (context / "models" / "modelyard.json").is_file()
    info = (context / "models" / "modelyard.json").read_text()
    lint = subprocess.run([shutil.which("hadolint") or "hadolint", str(context / "Containerfile")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    tag = f"localhost/modelyard-test/modelcar:{tmp_path.name.lower()[-20:]}"
    _podman("build", "--network", "none", "-t", tag, str(context))
    try:
        # KServe's sidecar command, as the image's user, with /mnt as KServe's emptyDir (0777;
        # podman's --tmpfs mode is ignored here, so a host folder stands in)
        empty_dir = tmp_path / "empty-dir"
        empty_dir.mkdir(mode=0o777)
        empty_dir.chmod(0o1777)
        script = (
            "ln -sf /proc/$$/root/models /mnt/models && id -u && cat /mnt/models/modelyard.json"
        )
        done = _podman("--runtime", "runc", "run", "--rm", "--network", "none", "--ulimit", "host",
                       "--cap-drop", "ALL", "-v", f"{empty_dir}:/mnt", tag,
                       "sh", "-c", script)  # fmt: skip
        uid, data = done.stdout.split("\n", 1)
        assert uid == "10001" and data == info
    finally:
        _podman("rmi", "-f", tag)
