"""A real MLflow, in a virtualenv of its own, filled by tests/ingest/mlflow_side.py.

The virtualenv lives in `~/.cache/modelyard-tests/mlflow-venv` and is reused while it imports;
it sees this environment's packages after its own, so making it installs only MLflow 3 and what
it adds (scikit-learn, XGBoost, LightGBM, ONNX, onnxruntime, skl2onnx, skops and torch are this
environment's, so pickles and skops files load on both sides).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

VENV = Path.home() / ".cache" / "modelyard-tests" / "mlflow-venv"
SIDE = Path(__file__).parent / "mlflow_side.py"
# onnxruntime: `mlflow.onnx.log_model` (3.17) imports it to check the session options.
SAME_AS_HERE = ("scikit-learn", "xgboost", "lightgbm", "onnx", "onnxruntime", "skl2onnx", "skops",
                "numpy")  # fmt: skip
CHECK = "import mlflow, sklearn, xgboost, lightgbm, onnx, onnxruntime, skl2onnx, skops"


@dataclass(frozen=True)
class MlflowRegistry:
    """A running `mlflow server`, what was logged to it and what MLflow predicted."""

    uri: str
    inputs: list[list[float]]
    versions: list[tuple[str, str]]
    answers: dict[str, dict[str, Any]]
    folders: Path


def _python() -> Path:
    return VENV / "bin" / "python"


def _usable() -> bool:
    if not _python().exists():
        return False
    return subprocess.run([_python(), "-c", CHECK], capture_output=True).returncode == 0


def _make_venv() -> None:
    shutil.rmtree(VENV, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    # This environment's packages are seen from the virtualenv, after its own: pip then installs
    # only what MLflow adds or needs at other versions (minutes, not the ten that a full set with
    # torch took on a clean machine), and the pinned frameworks are this environment's own.
    (own,) = subprocess.run(
        [_python(), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    Path(own, "_modelyard_parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pins = [f"{name}=={version(name)}" for name in SAME_AS_HERE]
    pip = [str(_python()), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "mlflow>=3,<4", *pins], check=True)


@pytest.fixture(scope="session")
def mlflow_python() -> Path:
    """The MLflow virtualenv's interpreter, made on first use."""
    if not _usable():
        _make_venv()
    return _python()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(uri: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer in time: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def mlflow_registry(
    mlflow_python: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowRegistry]:
    """`mlflow server` over SQLite with proxied artifacts, filled by mlflow_side.py."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [mlflow_python, "-m", "mlflow", "server", "--backend-store-uri",
             f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "artifacts"),
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            stdout=output, stderr=subprocess.STDOUT, env=env, cwd=root,
        )  # fmt: skip
    try:
        _wait(uri, process, log)
        side = [str(mlflow_python), str(SIDE)]
        out = root / "out.json"
        for args in (["registry", uri, str(out)], ["folder", str(root / "folders")]):
            done = subprocess.run([*side, *args], capture_output=True, text=True, cwd=root, env=env)
            assert done.returncode == 0, done.stderr[-3000:]
        written = json.loads(out.read_text())
        yield MlflowRegistry(
            uri=uri,
            inputs=written["inputs"],
            versions=[tuple(pair) for pair in written["versions"]],
            answers=written["answers"],
            folders=root / "folders",
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
