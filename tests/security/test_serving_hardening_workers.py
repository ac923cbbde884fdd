"""`serve --workers N` hands its settings to the workers in a private file, not through the
environment: no worker's environment holds the S3 secret, and the parent's is left as it was."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.api._workers import SPEC, read_worker_spec, worker_environment
from tests.servers import serving_process


def test_the_worker_environment_holds_no_secret_and_is_put_back(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODELYARD_S3_SECRET_ACCESS_KEY", "from-the-environment")
    monkeypatch.setenv("MODELYARD_SERVE_MAX_QUEUE", "7")
    before = dict(os.environ)
    settings = Settings(home=tmp_path, s3_secret_access_key="s3cr3t", secret_key="k3y")
    with worker_environment(settings, ["fraud@production"], {"trust": False}) as spec:
        inside = dict(os.environ)
        assert stat.S_IMODE(spec.stat().st_mode) == 0o600
        assert stat.S_IMODE(spec.parent.stat().st_mode) == 0o700
        handed = read_worker_spec()
    assert os.environ == before
    assert not spec.exists()
    assert not [key for key in inside if key.startswith("MODELYARD_") and key != SPEC]
    assert "s3cr3t" not in "".join(inside.values())
    assert handed.settings.s3_secret_access_key == "s3cr3t"
    assert handed.settings == settings  # secrets included (a JSON dump would mask them)
    assert handed.settings.serve_max_queue == 7
    assert (handed.refs, handed.options) == (["fraud@production"], {"trust": False})


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            if f"\nPPid:\t{pid}\n" in status:
                found.append(int(entry.name))
    return found


def test_worker_processes_do_not_inherit_the_secret(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = DummyRegressor(strategy="constant", constant=2.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="fraud", input_example=np.zeros((1, 3), np.float32))
    secret = f"secret-{uuid.uuid4().hex}"
    env = {"MODELYARD_S3_SECRET_ACCESS_KEY": secret}
    with serving_process(home, "fraud", "--workers", "2", env=env) as url:
        port = url.rsplit(":", 1)[1]
        command = "\0".join(["serve", "fraud", "--workers", "2", "--port", port, ""])
        (parent,) = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _cmdline(entry).endswith(command)
        ]
        workers = children(parent)
        body = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32",
                            "data": [0, 0, 0]}]}  # fmt: skip
        answer = httpx.post(f"{url}/v2/models/fraud/infer", content=orjson.dumps(body))
        environments = [Path(f"/proc/{pid}/environ").read_bytes() for pid in workers]
    assert answer.status_code == 200
    assert len(workers) >= 2
    assert all(secret.encode() not in environment for environment in environments)
    assert all(b"MODELYARD_HOME=" not in environment for environment in environments)


def _cmdline(entry: Path) -> str:
    try:
        return (entry / "cmdline").read_text()
    except OSError:
        return ""
