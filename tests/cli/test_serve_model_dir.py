"""`modelyard serve --model-dir DIR`: a real server process serving model folders with no
registry (an unreachable PostgreSQL configured, and no registry.db made), answering exactly
what `load_model(...).predict` answers; and what it refuses before serving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from modelyard.flavors import load_model
from tests.cli.test_registry import home, run
from tests.servers import free_port, serving_process
from tests.serving.test_model_dir import save

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test

ROWS = np.array([[0.1, 0.9], [1.5, 0.3], [3.0, 2.0]])


def no_registry() -> dict[str, str]:
    """Settings that would fail any registry access: PostgreSQL on a port nothing listens on."""
    url = f"postgresql+psycopg://modelyard:x@127.0.0.1:{free_port()}/nothing?connect_timeout=1"
    return {"MODELYARD_DATABASE_URL": url, "MODELYARD_SERVE_LOG_SAMPLE": "1"}


def body(folder: Path) -> bytes:
    """An OIP request of `ROWS`, named as the model's signature names its input."""
    info = json.loads((folder / "modelyard.json").read_text())
    name = info["signature"]["inputs"][0]["name"]
    inputs = [{"name": name, "shape": list(ROWS.shape), "datatype": "FP64",
               "data": ROWS.ravel().tolist()}]  # fmt: skip
    return json.dumps({"inputs": inputs}).encode()


def infer(url: str, name: str, folder: Path, version: str = "") -> dict[str, Any]:
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    response = httpx.post(url + path, content=body(folder), timeout=30)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    expected = np.asarray(load_model(folder).predict(ROWS))
    got = np.asarray(answer["outputs"][0]["data"]).reshape(answer["outputs"][0]["shape"])
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)
    return answer


def test_one_folder_with_no_registry(home: Path, tmp_path: Path) -> None:
    folder = save(tmp_path / "iris")
    exits: list[int] = []
    with serving_process(home, "--model-dir", str(folder), env=no_registry(),
                         exit_codes=exits) as url:  # fmt: skip
        answer = infer(url, "iris", folder)
        assert (answer["model_name"], answer["model_version"]) == ("iris", "1")
        infer(url, "iris", folder, version="1")
        metadata = httpx.get(f"{url}/v2/models/iris").json()
        assert metadata["name"] == "iris" and metadata["versions"] == ["1"]
        assert httpx.get(f"{url}/v2/models/iris/versions/1").json()["inputs"]
        assert httpx.get(f"{url}/v2/models/iris/versions/2").status_code == 404
        metrics = httpx.get(f"{url}/metrics").text
        assert 'modelyard_requests_total{code="200",model="iris",version="1"} 2.0' in metrics
    assert exits == [0]
    assert list((home / "predictions").rglob("*.jsonl"))  # logged for monitoring, as usual
    assert not (home / "registry.db").exists()  # nothing opened or made a registry


def test_many_folders_with_records_in_workers(home: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    iris, fraud = save(models / "iris"), save(models / "fraud")
    (models / "iris.version.json").write_text(json.dumps({"name": "iris", "number": 3}))
    with serving_process(home, "--model-dir", str(models), "--workers", "2",
                         env=no_registry()) as url:  # fmt: skip
        assert infer(url, "iris", iris, version="3")["model_version"] == "3"
        assert infer(url, "fraud", fraud)["model_version"] == "1"
        assert httpx.get(f"{url}/v2/models/iris").json()["versions"] == ["3"]
    with serving_process(home, "--model-dir", str(models), "--name", "fraud",
                         env=no_registry()) as url:  # fmt: skip
        infer(url, "fraud", fraud)
        assert httpx.get(f"{url}/v2/models/iris").status_code == 404
    assert not (home / "registry.db").exists()


def test_a_single_folder_served_under_another_name(home: Path, tmp_path: Path) -> None:
    folder = save(tmp_path / "model")
    env = {"MODELYARD_DATABASE_URL": no_registry()["MODELYARD_DATABASE_URL"]}  # no log either
    with serving_process(home, "--model-dir", str(folder), "--name", "fraud", env=env) as url:
        infer(url, "fraud", folder)
    assert not home.exists()  # with no prediction log, the home is not even made


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["iris@production"], "--model-dir serves the folders there: give no REFS with it"),
        (["--canary", "iris:2=10%"], "--canary and --shadow need a registry"),
        (["--shadow", "iris:2"], "--canary and --shadow need a registry"),
        (["--alerts", "rules.yaml"], "--alerts needs a registry"),
        (["--auth"], "--auth checks tokens against a registry"),
    ],
)
def test_what_needs_a_registry_is_refused(tmp_path: Path, args: list[str], message: str) -> None:
    folder = save(tmp_path / "iris")
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    args = [a.replace("rules.yaml", str(tmp_path / "rules.yaml")) for a in args]
    code, _, err = run("serve", "--model-dir", str(folder), "--port", "0", *args)
    assert code == 1 and message in err, err


def test_refs_or_a_model_dir_are_needed() -> None:
    code, _, err = run("serve", "--port", "0")
    assert code == 2 and "Missing argument" in err and "--model-dir" in err
    code, _, err = run("serve", "iris", "--name", "fraud", "--port", "0")
    assert code == 1 and "--name goes with --model-dir" in err


def test_a_bad_model_dir_fails_naming_the_file(tmp_path: Path) -> None:
    models = tmp_path / "models"
    save(models / "iris")
    (models / "iris.version.json").write_text("{oops")
    code, _, err = run("serve", "--model-dir", str(models), "--port", "0")
    assert code == 1 and f"{models / 'iris.version.json'} is not valid JSON" in err, err
