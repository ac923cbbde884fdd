"""Attacks on a real `modelyard serve` process: requests that used to grow /metrics without end
(one series per invented model name), shapes that used to answer 500, and clients that send
their request too slowly (the read timeouts of `modelyard.api._running`)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
from sklearn.dummy import DummyRegressor

from modelyard import Settings, Yard
from tests.servers import serving_process

X = np.zeros((1, 3), np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("serving-hardening") / "home"
    model = DummyRegressor(strategy="constant", constant=1.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="fraud", input_example=X, alias="production")
    with serving_process(home, "fraud@production") as url:
        yield url


def tensor(**fields: Any) -> bytes:
    item = {"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [0, 0, 0], **fields}
    return orjson.dumps({"inputs": [item]})


def test_invented_model_names_add_no_metric_series(server: str) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        assert client.post("/v2/models/fraud/infer", content=tensor()).status_code == 200
        assert client.post("/v2/models/nope/infer", content=tensor()).status_code == 404
        assert client.post("/v2/models/fraud/versions/9/infer", content=tensor()).status_code == 404
        before = client.get("/metrics").content
        names = [uuid.uuid4().hex for _ in range(2000)]
        for i, name in enumerate(names):
            model = name if i % 2 else f"fraud/versions/{name}"
            path = f"/v2/models/{model}/infer"
            assert client.post(path, content=tensor()).status_code == 404
        after = client.get("/metrics").content
    assert len(after) < len(before) + 512  # counts grew, series did not (was +1 series each)
    assert not any(name.encode() in after for name in names)
    assert b'model="<unknown>",version="<unknown>"' in after
    assert b'model="fraud",version="<unknown>"' in after


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"shape": [0, 2**62], "data": []}, "sizes must be integers from 0 to"),
        ({"shape": [0, 3], "data": []}, "holds no values"),
        ({"shape": [True, 3]}, "sizes must be integers from 0 to"),
        ({"shape": [1, 3.0]}, "sizes must be integers from 0 to"),
        ({"shape": [-1, 3]}, "sizes must be integers from 0 to"),
        ({"shape": [2**31, 2**31]}, "sizes must be integers from 0 to"),
        ({"shape": [1] * 40, "data": [0]}, "40 dimensions"),
        ({"shape": [1, 2]}, "holds 2 values, but its data has 3"),
        ({"datatype": ["FP32"]}, "has datatype ['FP32']"),
        ({"datatype": "FP128"}, "has datatype 'FP128'"),
        ({"datatype": "INT8", "data": [300, 0, 0]}, "data are not INT8 values"),
        ({"parameters": [1, 2]}, "input 'input-0': parameters must be a JSON object"),
    ],
)
def test_bad_tensors_answer_400_naming_the_input(
    server: str, fields: dict[str, Any], message: str
) -> None:
    response = httpx.post(f"{server}/v2/models/fraud/infer", content=tensor(**fields))
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]
    assert "'input-0'" in response.json()["error"]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"outputs": [{}]}, "outputs must be a list of objects"),
        ({"outputs": "output-0"}, "outputs must be a list of objects"),
        ({"parameters": "x"}, "parameters must be a JSON object"),
    ],
)
def test_bad_request_fields_answer_400(server: str, document: dict[str, Any], message: str) -> None:
    body = {**orjson.loads(tensor()), **document}
    response = httpx.post(f"{server}/v2/models/fraud/infer", content=orjson.dumps(body))
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_an_integer_past_64_bits_is_no_size(server: str) -> None:
    body = tensor().replace(b"[1,3]", b"[1," + str(2**80).encode() + b"]")
    response = httpx.post(f"{server}/v2/models/fraud/infer", content=body)
    assert response.status_code == 400  # orjson reads it as a float
    assert "sizes must be integers" in response.json()["error"]


def test_the_server_still_answers(server: str) -> None:
    response = httpx.post(f"{server}/v2/models/fraud/infer", content=tensor())
    assert response.status_code == 200
    assert response.json()["outputs"][0]["data"] == [1.0]


def test_slow_clients_are_cut_off(tmp_path: Path) -> None:
    home = tmp_path / "home"
    model = DummyRegressor(strategy="constant", constant=1.0).fit(np.zeros((2, 3)), [0, 0])
    with Yard(Settings(home=home)) as yard:
        yard.log_model(model, name="fraud", input_example=X)
    env = {"MODELYARD_SERVER_READ_TIMEOUT_SECONDS": "1"}
    with serving_process(home, "fraud", env=env) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as headers_only:
            headers_only.sendall(b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\n")
            with socket.create_connection((host, int(port)), timeout=10) as slow_body:
                slow_body.sendall(
                    b"POST /v2/models/fraud/infer HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Length: 100\r\n\r\n{"
                )
                time.sleep(2)
                answer = slow_body.recv(4096)
            assert headers_only.recv(4096) == b""  # closed: the headers never finished
        assert httpx.post(f"{url}/v2/models/fraud/infer", content=tensor()).status_code == 200
    assert answer.startswith(b"HTTP/1.1 408")
