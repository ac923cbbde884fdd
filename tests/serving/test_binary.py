"""The binary data extension over HTTP: `tritonclient.http` (a real client that speaks it) against
`modelyard serve`, and malformed bodies sent raw, which must each be a 400 naming the problem."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from sklearn.linear_model import LinearRegression

from modelyard import Settings, Yard
from tests.asgi import serving
from tests.servers import serving_process
from tests.serving.tensor_models import Double, Mirror

EXAMPLE = {
    "image": np.zeros((1, 3, 2, 2), np.float32),
    "flag": np.array([True]),
    "word": np.array(["a"], dtype=object),
    "count": np.array([1], np.int64),
    "half": np.array([1.5], np.float16),
}
RNG = np.random.default_rng(3)
X = RNG.normal(size=(200, 3)).astype(np.float32)


def tensors() -> dict[str, tuple[np.ndarray, str]]:
    """The same tensors on every call: each datatype the extension lays out differently."""
    return {
        "image": (np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 2, 2), "FP32"),
        "flag": (np.array([True, False]), "BOOL"),
        "word": (np.array(["héllo", b"\xff\x01"], dtype=object), "BYTES"),
        "count": (np.array([-3, 2**40], np.int64), "INT64"),
        "half": (np.array([0.5, -2.0], np.float16), "FP16"),
    }


def inputs(binary: set[str] | None = None) -> list[triton.InferInput]:
    """Every tensor as a Triton input; as raw bytes when named in `binary` (all by default)."""
    made = []
    for name, (array, datatype) in tensors().items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        send_binary = binary is None or name in binary
        tensor.set_data_from_numpy(array if send_binary else _text(array), binary_data=send_binary)
        made.append(tensor)
    return made


def _text(array: np.ndarray) -> np.ndarray:
    if array.dtype != object:
        return array
    return np.array([v if isinstance(v, str) else v.decode("latin-1") for v in array], object)


def check_mirrored(result: triton.InferResult, names: list[str]) -> None:
    sent = tensors()
    for name in names:
        answer = result.as_numpy(name)
        array = sent[name][0]
        if name == "flag":
            assert answer.tolist() == [False, True]
        elif name == "word":
            assert [bytes(v) if not isinstance(v, str) else v.encode() for v in answer] == [
                "HÉLLO".encode(), b"\x01\xff"
            ]  # fmt: skip
        else:
            np.testing.assert_array_equal(answer, array * 2)
            assert answer.dtype == array.dtype


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("binary") / "home"
    with Yard(Settings(home=home)) as yard:
        yard.log_model(Mirror(), name="mirror", input_example=EXAMPLE)
        yard.log_model(Double(), name="double", input_example=np.zeros((1, 3, 4, 4), np.float32))
    env = {"MODELYARD_SERVE_MAX_BODY_BYTES": str(64 << 10)}
    with serving_process(home, "mirror", "double", "--trust", env=env) as url:
        yield url


def test_a_triton_client_sends_and_receives_raw_tensors(server: str) -> None:
    client = triton.InferenceServerClient(server.removeprefix("http://"))
    try:
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        result = client.infer("mirror", inputs(), request_id="7")
        response = result.get_response()
        assert response["id"] == "7" and response["model_version"] == "1"
        assert all("binary_data_size" in output["parameters"] for output in response["outputs"])
        check_mirrored(result, list(tensors()))
        asked = [triton.InferRequestedOutput("image"), triton.InferRequestedOutput("word", False),
                 triton.InferRequestedOutput("half", binary_data=True)]  # fmt: skip
        mixed = client.infer("mirror", inputs(binary={"image", "count"}), model_version="1",
                             outputs=asked)  # fmt: skip
        outputs = {output["name"]: output for output in mixed.get_response()["outputs"]}
        assert set(outputs) == {"image", "word", "half"}
        assert outputs["word"]["data"] == ["HÉLLO", "Ÿ\x01"]  # JSON, as asked
        assert outputs["image"]["parameters"] == {"binary_data_size": 2 * 3 * 2 * 2 * 4}
        check_mirrored(mixed, ["image", "half"])
        image = RNG.normal(size=(4, 3, 4, 4)).astype(np.float32)
        tensor = triton.InferInput("input-0", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        doubled = client.infer("double", [tensor]).as_numpy("output-0")
        np.testing.assert_array_equal(doubled, image * 2)
    finally:
        client.close()


def test_json_only_clients_are_answered_in_json(server: str) -> None:
    body = orjson.dumps({"inputs": [
        {"name": "input-0", "shape": [1, 3, 4, 4], "datatype": "FP32", "data": [1.0] * 48}
    ]})  # fmt: skip
    response = httpx.post(f"{server}/v2/models/double/infer", content=body)
    assert response.headers["content-type"] == "application/json"
    assert "inference-header-content-length" not in response.headers
    assert response.json()["outputs"][0]["data"] == [2.0] * 48
    raw = httpx.post(
        f"{server}/v2/models/double/infer",
        content=orjson.dumps({**orjson.loads(body), "parameters": {"binary_data_output": True}}),
    )
    assert raw.headers["content-type"] == "application/octet-stream"
    length = int(raw.headers["inference-header-content-length"])
    assert orjson.loads(raw.content[:length])["outputs"][0]["parameters"] == {
        "binary_data_size": 48 * 4
    }
    assert np.frombuffer(raw.content[length:], "<f4").tolist() == [2.0] * 48


def raw_request(header: dict[str, Any], data: bytes, length: int | None = None) -> dict[str, Any]:
    json = orjson.dumps(header)
    size = str(len(json) if length is None else length)
    return {"content": json + data, "headers": {"Inference-Header-Content-Length": size}}


def image_input(size: int = 48 * 4, **item: Any) -> dict[str, Any]:
    return {"name": "input-0", "shape": [1, 3, 4, 4], "datatype": "FP32",
            "parameters": {"binary_data_size": size}, **item}  # fmt: skip


ZEROS = b"\0" * 48 * 4
MALFORMED = [
    (raw_request({"inputs": [image_input()]}, ZEROS, 100_000), "is 100000 but the body has only"),
    (raw_request({"inputs": [image_input()]}, ZEROS, 5), "not valid JSON"),
    (raw_request({"inputs": [image_input(size=400)]}, ZEROS), "runs past the end of the body"),
    (raw_request({"inputs": [image_input(size=8)]}, ZEROS[:8]), "which is 192 bytes"),
    (raw_request({"inputs": [image_input()]}, ZEROS + b"\0"), "add up to 192"),
    (raw_request({"inputs": [image_input(size="192")]}, ZEROS), "whole number of bytes, got '192'"),
    (raw_request({"inputs": [image_input(data=[0] * 48)]}, ZEROS), "both data and parameters"),
    (
        {"content": orjson.dumps({"inputs": [image_input()]}) + ZEROS},
        "binary tensors after the JSON need the Inference-Header-Content-Length header",
    ),
    (
        {"content": ZEROS, "headers": {"Inference-Header-Content-Length": "-3"}},
        "must be a whole number of bytes, got '-3'",
    ),
    (
        raw_request(
            {"inputs": [{"name": "input-0", "shape": [1, 3, 4, 4], "datatype": "FP32"}]}, b""
        ),
        "neither data nor parameters.binary_data_size",
    ),  # fmt: skip
    (
        raw_request(
            {"inputs": [image_input(datatype="FP64", size=48 * 8)]}, np.full(48, 0.1).tobytes()
        ),
        "FP64",  # the signature says FP32, where 0.1 is not exact (zeros would be cast)
    ),
]


def test_malformed_binary_bodies_are_400s_that_name_the_problem(server: str) -> None:
    for request, message in MALFORMED:
        for action in ("infer", "explain"):
            response = httpx.post(f"{server}/v2/models/double/{action}", **request)
            assert response.status_code == 400, (message, response.text)
            assert message in response.json()["error"], (message, response.json())
    large = raw_request({"inputs": [image_input(size=70_000)]}, b"\0" * 70_000)
    response = httpx.post(f"{server}/v2/models/double/infer", **large)
    assert response.status_code == 413 and "over the limit of 65536 bytes" in response.text


@pytest.mark.anyio
async def test_explain_and_infer_take_binary_inputs_in_process(tmp_path: Path) -> None:
    yard = Yard(Settings(home=tmp_path / "home"))
    model = LinearRegression().fit(X, X @ np.array([1.0, -2.0, 0.5]))
    yard.log_model(model, name="lin", input_example=X[:2], reference_data=X)
    tensor = triton.InferInput("input-0", [4, 3], "FP32")
    tensor.set_data_from_numpy(X[:4])
    body, length = triton.InferenceServerClient.generate_request_body([tensor])
    headers = {"Inference-Header-Content-Length": str(length)}
    async with serving(yard, "lin") as client:
        explained = await client.post("/v2/models/lin/explain", content=body, headers=headers)
        assert explained.status_code == 200, explained.text
        np.testing.assert_allclose(explained.json()["prediction"], model.predict(X[:4]), rtol=1e-5)
        inferred = await client.post("/v2/models/lin/infer", content=body, headers=headers)
        result = triton.InferenceServerClient.parse_response_body(
            inferred.content, header_length=int(inferred.headers["inference-header-content-length"])
        )
        np.testing.assert_allclose(result.as_numpy("output-0"), model.predict(X[:4]), rtol=1e-5)
        words = struct.pack("<I", 1) + b"a"
        bad = raw_request({"inputs": [{"name": "input-0", "shape": [1], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": 5}}]}, words)  # fmt: skip
        refused = await client.post("/v2/models/lin/infer", **bad)
        assert refused.status_code == 400
