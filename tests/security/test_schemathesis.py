"""Schemathesis against both real servers: a bounded, seeded run of each OpenAPI document.

What it checks on every generated request: no 5xx (a client's mistake is always a 4xx that says
what is wrong), declared responses match their schema, and a 405 carries an `Allow` header that
lists exactly the methods the path supports. The run is seeded, so a failure reproduces; the
report's `st replay` lines and curl commands are in the assertion message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Settings, Yard
from tests.servers import running_server, serving_process

CHECKS = (
    "not_a_server_error,response_schema_conformance,unsupported_method,allow_header_conformance"
)
SEED = 20261202


def schemathesis(url: str, *, examples: int, report: Path, extra: tuple[str, ...] = ()) -> None:
    """Run the schemathesis CLI on `url`'s OpenAPI document; fail with its findings."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run", f"{url}/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(examples),
        "--seed", str(SEED),
        "--workers", "1",
        "--phases", "examples,coverage,fuzzing",
        "--request-timeout", "30",
        "--suppress-health-check", "all",
        "--report", "junit", "--report-dir", str(report),
        *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=report.parent)
    if done.returncode != 0:
        pytest.fail(f"schemathesis found problems:\n{done.stdout[-12000:]}\n{done.stderr[-2000:]}")


def _registered_model(home: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3)).astype(np.float32)
    model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="iris", input_example=X[:5], reference_data=X)
        yard.set_alias("iris", "production", "iris:1")


def test_registry_server_has_no_5xx_and_follows_its_schema(tmp_path: Path) -> None:
    with running_server(tmp_path) as url:
        with Yard(Settings(home=tmp_path / "client", url=url)) as client:
            rng = np.random.default_rng(0)
            X = rng.normal(size=(40, 3)).astype(np.float32)
            model = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
            client.log_model(model, name="iris", input_example=X[:5])
        # The event stream answers 200 and never ends: each generated call would wait out the
        # request timeout (30 s). tests/api/test_events.py covers its auth and limits.
        schemathesis(url, examples=12, report=tmp_path / "registry-report",
                     extra=("--exclude-path", "/api/v1/events"))  # fmt: skip


def test_inference_server_has_no_5xx_and_follows_its_schema(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _registered_model(home)
    with serving_process(home, "iris@production") as url:
        schemathesis(url, examples=25, report=tmp_path / "serving-report")
