"""A restart whose alias points at a version that cannot load serves the last good version, as a
real `modelyard serve` process: it says so in the log, the metrics and the model's metadata, and
swaps when the alias moves to a version that loads. With no last good version, the start fails
with one line naming the version and why."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from tests.servers import free_port, serving_process

X = np.zeros((1, 3), np.float32)
BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
)
ENV = {"MODELYARD_SERVE_POLL_SECONDS": "0.1"}


def constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit(np.zeros((2, 3)), [0, 0])


def log_corrupt(home: Path, value: float) -> None:
    """Register a version of `fraud` on the alias `production`, then flip a byte in each blob
    file it added: its files no longer hash to their digests."""

    def files() -> set[Path]:
        blobs = home / "blobs"
        return {p for p in blobs.rglob("*") if p.is_file() and {"sha256", "packs"} & set(p.parts)}

    before = files()
    with Yard(Settings(home=home)) as yard:
        yard.log_model(constant(value), name="fraud", input_example=X, alias="production")
    added = files() - before
    assert added
    for path in added:
        path.chmod(0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))


def answer(url: str) -> tuple[str, float]:
    body = httpx.post(f"{url}/v2/models/fraud/infer", content=BODY, timeout=10).json()
    return body["model_version"], body["outputs"][0]["data"][0]


def test_a_restart_serves_the_last_good_version_and_swaps_when_the_alias_moves(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
    with serving_process(home, "fraud@production", env=ENV) as url:
        assert answer(url) == ("1", 1.0)
    recorded = json.loads((home / "serving" / "last-good.json").read_text())
    assert recorded["fraud@production"]["ref"] == "fraud:1"

    log_corrupt(home, 2.0)  # the alias moves to a version whose blobs are damaged
    exits: list[int] = []
    with serving_process(home, "fraud@production", env=ENV, exit_codes=exits) as url:
        assert answer(url) == ("1", 1.0)
        metadata = httpx.get(f"{url}/v2/models/fraud").json()["parameters"]
        assert metadata["version"] == "1" and metadata["unloadable_version"] == "2"
        assert "is corrupt" in metadata["unloadable_reason"]
        metrics = httpx.get(f"{url}/metrics").text
        assert (
            'modelyard_alias_fallback{alias="production",model="fraud",version="2"} 1.0' in metrics
        )
        refused = 'modelyard_refused_versions_total{model="fraud",reason="integrity_error",'
        assert refused + 'version="2"} 1.0' in metrics
        with Yard(Settings(home=home)) as yard:  # a good version: swapped in
            yard.log_model(constant(3.0), name="fraud", input_example=X, alias="production")
        deadline = time.monotonic() + 20
        while answer(url) != ("3", 3.0):
            assert time.monotonic() < deadline, "version 3 never answered"
            time.sleep(0.05)
        assert "unloadable_version" not in httpx.get(f"{url}/v2/models/fraud").json()["parameters"]
        assert "modelyard_alias_fallback{" not in httpx.get(f"{url}/metrics").text
    assert exits == [0]
    log = (tmp_path / "serve.log").read_text()
    assert "ERROR modelyard.serving: fraud@production: version 2 does not load: blob" in log
    assert "fraud@production: serving version 1, the last good one, until the alias" in log
    assert "serving fraud:1, the last good version of fraud@production (fraud:2 does not" in log
    recorded = json.loads((home / "serving" / "last-good.json").read_text())
    assert recorded["fraud@production"]["ref"] == "fraud:3"


def test_with_no_last_good_version_the_start_fails_in_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    log_corrupt(home, 1.0)
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", "serve", "fraud@production", "--port",
         str(free_port())],
        env={**os.environ, "MODELYARD_HOME": str(home)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the server did not start: cannot serve fraud@production: ")
    assert "version 1 does not load (blob sha256:" in last and "is corrupt" in last
    assert "no other version of it has served here" in last
