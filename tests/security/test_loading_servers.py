"""The loading attacks against real processes: an anonymous client registers a version whose
files would run code (or crash the process natively) and moves the alias a running `modelyard
serve` follows. The version is refused, its marker never appears, and the old one keeps serving."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import xgboost
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.errors import ModelyardError
from modelyard.flavors import save_model
from tests.flavors.torch_models import MLP
from tests.security.loading_payloads import (
    crashing_lightgbm,
    replace_member,
    skops_popen,
    torch_save,
    write_info,
)
from tests.servers import running_server, serving_process

X = np.zeros((1, 3), np.float32)
BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
)


def constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit(np.zeros((2, 3)), [0, 0])


def answer(url: str) -> tuple[str, float]:
    body = httpx.post(f"{url}/v2/models/fraud/infer", content=BODY, timeout=10).json()
    return body["model_version"], body["outputs"][0]["data"][0]


def skops_folder(folder: Path, marker: Path) -> Path:
    """A version whose `model.skops` top node is `subprocess.Popen(["touch", marker])`, and
    whose own `modelyard.json` says to trust `subprocess.Popen`."""
    write_info(folder, "sklearn", {"format": "skops", "file": "model.skops", "method": "predict",
                                   "trusted_types": ["subprocess.Popen"]})  # fmt: skip
    (folder / "model.skops").write_bytes(skops_popen(marker))
    return folder


def export_folder(folder: Path, marker: Path) -> Path:
    """A torch.export version whose `sample_inputs/model.pt` pickle calls `os.system`."""
    save_model(MLP(inputs=3), folder, input_example=np.zeros((2, 3), np.float32), export=True)
    evil = folder.parent / "evil.pt"
    command = f"touch {marker}".encode()
    system = b"\x80\x02cposix\nsystem\n(X" + len(command).to_bytes(4, "little") + command + b"tR."
    torch_save(evil, system)
    replace_member(folder / "model.pt2", "model/data/sample_inputs/model.pt", evil.read_bytes())
    evil.unlink()
    return folder


@pytest.mark.parametrize("payload", [skops_folder, export_folder], ids=["skops", "torch.export"])
def test_code_execution_payload_is_refused_at_the_swap(
    tmp_path: Path, payload: Callable[[Path, Path], Path]
) -> None:
    marker = tmp_path / "pwned"
    with running_server(tmp_path) as registry:
        env = {"MODELYARD_URL": registry, "MODELYARD_SERVE_POLL_SECONDS": "0.2"}
        with Yard(Settings(home=tmp_path / "attacker", url=registry)) as attacker:
            attacker.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
            # Even with --trust (pickles allowed), neither payload may run.
            # Allowed another signature, so the swap gets as far as loading the payload.
            with serving_process(tmp_path / "serve-home", "fraud@production", "--trust",
                                 "--allow-signature-change", env=env) as url:  # fmt: skip
                assert answer(url) == ("1", 1.0)
                evil = payload(tmp_path / "evil", marker)
                version = attacker.log_model(evil, name="fraud", alias="production")
                assert version.number == 2  # registered, and the alias moved
                # The swap loads version 2 in the background; on a busy machine that takes
                # longer than the ten polls of the alias once waited here.
                _wait_for_line(tmp_path / "serve.log", "refused version 2", timeout=60.0)
                assert answer(url) == ("1", 1.0)
                assert httpx.get(f"{url}/v2/health/live").status_code == 200
    assert not marker.exists()


def crashing_xgboost(folder: Path) -> Path:
    """An XGBoost model whose first split reads feature 10^9: predicting segfaults."""
    rng = np.random.default_rng(0)
    x = rng.random((60, 3))
    booster = xgboost.train({"max_depth": 2}, xgboost.DMatrix(x, label=x[:, 0]), 2)
    save_model(booster, folder, input_example=x[:2].astype(np.float32))
    config = json.loads(bytes(booster.save_raw("json")))
    config["learner"]["gradient_booster"]["model"]["trees"][0]["split_indices"][0] = 1_000_000_000
    broken = xgboost.Booster()
    broken.load_model(bytearray(json.dumps(config).encode()))
    broken.save_model(folder / "model.ubj")
    return folder


@pytest.mark.parametrize(
    ("crashing", "signal"),
    [(crashing_lightgbm, "SIGABRT"), (crashing_xgboost, "SIGSEGV")],
    ids=["lightgbm", "xgboost"],
)
def test_crashing_model_is_refused_at_registration(
    tmp_path: Path, crashing: Callable[[Path], Path], signal: str
) -> None:
    with running_server(tmp_path) as registry:
        with Yard(Settings(home=tmp_path / "client", url=registry)) as client:
            client.log_model(constant(1.0), name="fraud", input_example=X)
            with pytest.raises(ModelyardError, match=signal):
                client.log_model(crashing(tmp_path / "evil"), name="fraud")
            assert httpx.get(f"{registry}/health").status_code == 200
            assert [v.number for v in client.list_versions("fraud")] == [1]


def test_crashing_lightgbm_is_refused_at_the_swap(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:  # the embedded registry: no registration probe
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
        env = {"MODELYARD_SERVE_POLL_SECONDS": "0.2"}
        exits: list[int] = []
        with serving_process(home, "fraud@production", "--allow-signature-change", env=env,
                             exit_codes=exits) as url:  # fmt: skip
            assert answer(url) == ("1", 1.0)
            yard.log_model(crashing_lightgbm(tmp_path / "evil"), name="fraud", alias="production")
            # The probe child imports LightGBM before it crashes: seconds on a busy machine.
            log = _wait_for_line(tmp_path / "serve.log", "refused version 2", timeout=60.0)
            assert answer(url) == ("1", 1.0)
    assert exits == [0]  # alive until SIGTERM, and a clean exit then
    assert "SIGABRT" in log


def _wait_for_line(path: Path, text: str, *, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in (log := path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not in {path} after {timeout:g} s:\n{log}"
        time.sleep(0.2)
    return log
