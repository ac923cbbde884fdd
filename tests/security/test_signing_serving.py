"""`modelyard serve` with `require_signature`: an unsigned version, or one whose signature is
another version's, is refused at the swap and the old version keeps answering; a signed one
swaps in; an unsigned version is refused at the initial load."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from tests.security.test_signing import make_keys
from tests.servers import serving_process

X = np.zeros((1, 3), np.float32)
BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
)
TAG = "modelyard.signature"


def constant(value: float) -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=value).fit(np.zeros((2, 3)), [0, 0])


def answer(url: str) -> tuple[str, float]:
    response = httpx.post(f"{url}/v2/models/fraud/infer", content=BODY, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    return body["model_version"], body["outputs"][0]["data"][0]


def answers_for(url: str, seconds: float) -> set[str]:
    """The versions that answered during `seconds` (several alias polls)."""
    seen = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(answer(url)[0])
        time.sleep(0.05)
    return seen


def wait_for(url: str, version: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while answer(url)[0] != version:
        assert time.monotonic() < deadline, f"version {version} never answered"
        time.sleep(0.05)


def policy(public: Path) -> dict[str, str]:
    return {
        "MODELYARD_REQUIRE_SIGNATURE": "true",
        "MODELYARD_TRUSTED_KEYS": json.dumps([str(public)]),
        "MODELYARD_SERVE_POLL_SECONDS": "0.2",
    }


def test_a_swap_to_an_unsigned_or_forged_version_is_refused(tmp_path: Path) -> None:
    private, public = make_keys(tmp_path / "keys")
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
        yard.sign("fraud:1", key=private)
        yard.log_model(constant(2.0), name="fraud", input_example=X)  # unsigned
        signature = yard.get_version("fraud:1").tags[TAG]
        yard.log_model(constant(3.0), name="fraud", input_example=X, tags={TAG: signature})
        yard.log_model(constant(4.0), name="fraud", input_example=X)
        yard.sign("fraud:4", key=private)
        exits: list[int] = []
        with serving_process(home, "fraud@production", env=policy(public), exit_codes=exits) as url:
            assert answer(url) == ("1", 1.0)
            yard.set_alias("fraud", "production", "fraud:2")
            assert answers_for(url, 1.5) == {"1"}  # refused: the old version keeps serving
            yard.set_alias("fraud", "production", "fraud:3")
            assert answers_for(url, 1.5) == {"1"}
            yard.set_alias("fraud", "production", "fraud:4")
            wait_for(url, "4")
            assert answer(url) == ("4", 4.0)
    assert exits == [0]
    log = (tmp_path / "serve.log").read_text()
    assert "fraud:2 is not signed" in log
    assert "the signature of fraud:3 does not verify: files differ from what was signed" in log


def test_an_unsigned_version_is_refused_at_the_initial_load(tmp_path: Path) -> None:
    _, public = make_keys(tmp_path / "keys")
    home = tmp_path / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(constant(1.0), name="fraud", input_example=X, alias="production")
    with (
        pytest.raises(RuntimeError, match="fraud:1 is not signed"),
        serving_process(home, "fraud@production", env=policy(public)),
    ):
        pass  # pragma: no cover - the server never becomes ready
