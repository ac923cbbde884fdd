"""`modelyard serve` with `MODELYARD_AUTH=true`: a real inference process answers only bearers
with the reader role on the model, checked against its registry, local or a server's."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from modelyard.registry import Principals
from tests.servers import running_server, serving_process

X = np.zeros((1, 3), np.float32)
BODY = orjson.dumps(
    {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0]}]}
)


def _tokens(yard: Yard) -> dict[str, str]:
    principals = Principals(yard.local_registry().database, actor="root")
    principals.grant("rita", "reader", models="fraud")
    principals.grant("serving", "reader")
    return {user: principals.create_token(user=user).secret
            for user in ("rita", "nobody", "serving")}  # fmt: skip


def _check(url: str, tokens: dict[str, str]) -> None:
    infer = f"{url}/v2/models/fraud/infer"

    def post(token: str | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(infer, content=BODY, headers=headers, timeout=30)

    anonymous = post(None)
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert post("myd_forged").status_code == 401
    refused = post(tokens["nobody"])
    assert refused.status_code == 403 and refused.json()["type"] == "PermissionDenied"
    for _ in range(3):  # the first asks, the others come from the cache
        answered = post(tokens["rita"])
        assert answered.status_code == 200, answered.text
        assert answered.json()["outputs"][0]["data"] == [1.0]
    assert httpx.get(f"{url}/v2/models/fraud", timeout=30).status_code == 401
    assert httpx.get(f"{url}/v2/health/ready", timeout=30).status_code == 200
    assert httpx.get(f"{url}/metrics", timeout=30).status_code == 200


def _model() -> DummyRegressor:
    return DummyRegressor(strategy="constant", constant=1.0).fit(np.zeros((2, 3)), [0, 0])


def test_serving_checks_tokens_in_its_local_registry(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Yard(Settings(home=home, user="ana")) as yard:
        yard.log_model(_model(), name="fraud", input_example=X, alias="production")
        tokens = _tokens(yard)
    with serving_process(home, "fraud@production", env={"MODELYARD_AUTH": "true"}) as url:
        _check(url, tokens)


def test_serving_asks_the_registry_server(tmp_path: Path) -> None:
    server_home = tmp_path / "server-home"
    with Yard(Settings(home=server_home, user="ana")) as yard:  # the server's own registry
        yard.log_model(_model(), name="fraud", input_example=X, alias="production")
        tokens = _tokens(yard)
    with running_server(tmp_path, env={"MODELYARD_AUTH": "true"}) as registry:
        env = {"MODELYARD_AUTH": "true", "MODELYARD_URL": registry,
               "MODELYARD_TOKEN": tokens["serving"]}  # fmt: skip
        with serving_process(tmp_path / "serve-home", "fraud@production", env=env) as url:
            _check(url, tokens)
