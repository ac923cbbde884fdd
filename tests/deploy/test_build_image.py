"""`modelyard build` with real podman: the image is built from Debian's base (no public image
registry: scripts/container-base), runs as uid 10001, answers OIP requests as `load_model`
does, reports healthy, stops cleanly on SIGTERM, and a new version changes only the model's
layer.

Needs MODELYARD_TEST_CONTAINER_BASE and CONTAINERS_CONF (scripts/services.py exports both).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard import Settings, Yard
from tests.conftest import service_env
from tests.deploy._images import REPO, iris_data, register_iris, wheelhouse
from tests.servers import free_port

TAG = "localhost/modelyard-test/iris"


@dataclass(frozen=True)
class Built:
    yard: Yard
    home: Path
    wheels: Path
    image_id: str
    context: Path


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=600)
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: {done.stderr[-2000:]}", pytrace=False)
    return done


def build(home: Path, ref: str, *, wheels: Path, context: Path) -> str:
    """`modelyard build` as a user runs it; the image id it prints."""
    base = service_env("MODELYARD_TEST_CONTAINER_BASE")
    done = subprocess.run(
        [sys.executable, "-m", "modelyard", "build", ref, "--tag", f"{TAG}:{ref.split(':')[1]}",
         "--base", base, "--wheels", str(wheels), "--context", str(context)],
        capture_output=True, text=True, cwd=REPO, timeout=900,
        env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "MODELYARD_HOME": str(home),
             "CONTAINERS_CONF": service_env("CONTAINERS_CONF")},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("build")
    with Yard(Settings(home=root / "home")) as yard:
        ref = register_iris(yard)
        requirements = root / "req"
        yard.build_image(ref, tag="unused", context=requirements, build=False)
        lines = (requirements / "requirements.txt").read_text().split()
        wheels = wheelhouse(lines, root / "wheels")
        image_id = build(root / "home", ref, wheels=wheels, context=root / "ctx")
        yield Built(yard, root / "home", wheels, image_id, root / "ctx")


def inspect(image: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(podman("image", "inspect", image).stdout)[0]
    return found


def wait_ready(url: str, container: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    logs = podman("logs", container, check=False)
    pytest.fail(f"the container never got ready: {logs.stdout[-2000:]}{logs.stderr[-2000:]}")


def test_image_serves_the_version_and_stops_cleanly(built: Built) -> None:
    assert built.image_id.startswith("sha256:")
    image = inspect(f"{TAG}:1")
    assert image["Id"] == built.image_id.removeprefix("sha256:")
    assert image["Config"]["User"] == "10001:10001"
    assert image["Config"]["StopSignal"] == "SIGTERM"
    assert "/v2/health/ready" in " ".join(image["Healthcheck"]["Test"])
    assert image["Config"]["Labels"]["io.modelyard.ref"] == "iris:1"
    port = free_port()
    name = f"modelyard-test-iris-{port}"
    podman("--runtime", "runc", "run", "-d", "--name", name, "--ulimit", "host",
           "-p", f"127.0.0.1:{port}:8080", f"{TAG}:1")  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, name)
        features, _ = iris_data()
        metadata = httpx.get(f"{url}/v2/models/iris").json()
        tensor = {"name": metadata["inputs"][0]["name"], "datatype": "FP64",
                  "shape": list(features.shape), "data": features.ravel().tolist()}  # fmt: skip
        request = {"inputs": [tensor]}
        answer = httpx.post(f"{url}/v2/models/iris/infer", json=request, timeout=30).json()
        expected = built.yard.load_model("iris:1").predict(features)
        np.testing.assert_array_equal(np.asarray(answer["outputs"][0]["data"]), expected)
        assert podman("healthcheck", "run", name, check=False).returncode == 0
        assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
        began = time.monotonic()
        podman("stop", "-t", "10", name)
        assert time.monotonic() - began < 9  # SIGTERM drained and exited; no SIGKILL at 10 s
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        assert state["ExitCode"] == 0, podman("logs", name).stderr[-2000:]
    finally:
        podman("rm", "-f", name, check=False)


def test_a_new_version_changes_only_the_model_layer(built: Built, tmp_path: Path) -> None:
    ref = register_iris(built.yard, c=0.5)
    assert ref == "iris:2"
    build(built.home, ref, wheels=built.wheels, context=tmp_path / "ctx")
    one = inspect(f"{TAG}:1")["RootFS"]["Layers"]
    two = inspect(f"{TAG}:2")["RootFS"]["Layers"]
    assert len(one) == len(two) >= 3
    assert one[:-1] == two[:-1]  # base, user + venv, requirements, installed packages: shared
    assert one[-1] != two[-1]  # the model
    sizes = podman("history", "--format", "{{.Size}}\t{{.CreatedBy}}", f"{TAG}:2").stdout
    model_layer = next(line for line in sizes.splitlines() if "COPY dir:" in line)
    assert "kB" in model_layer.split("\t")[0]  # small: the model, not the dependencies
