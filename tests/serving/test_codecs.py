from __future__ import annotations

import numpy as np
import orjson
import pytest

from modelyard.errors import InvalidInput
from modelyard.serving import decode_request, encode_response
from modelyard.serving._oip import InferenceResponse


def body(*inputs: dict[str, object], **extra: object) -> bytes:
    return orjson.dumps({"inputs": list(inputs), **extra})


@pytest.mark.parametrize(
    ("datatype", "data", "dtype"),
    [
        ("BOOL", [True, False], np.bool_),
        ("UINT8", [1, 255], np.uint8),
        ("UINT16", [1, 2], np.uint16),
        ("UINT32", [1, 2], np.uint32),
        ("UINT64", [1, 2**63], np.uint64),
        ("INT8", [-1, 2], np.int8),
        ("INT16", [-1, 2], np.int16),
        ("INT32", [-1, 2], np.int32),
        ("INT64", [-1, 2**40], np.int64),
        ("FP16", [0.5, 1.5], np.float16),
        ("FP32", [0.5, 1.5], np.float32),
        ("FP64", [0.1, 1e300], np.float64),
        ("BYTES", ["a", "bc"], object),
    ],
)
def test_every_datatype_decodes(datatype: str, data: list[object], dtype: object) -> None:
    request = decode_request(body({"name": "x", "shape": [2], "datatype": datatype, "data": data}))
    array = request.inputs["x"]
    assert array.dtype == np.dtype(dtype)  # type: ignore[call-overload]
    assert array.tolist() == data


def test_nested_data_shape_and_fields() -> None:
    request = decode_request(
        body(
            {"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [[1, 2, 3], [4, 5, 6]]},
            {
                "name": "b",
                "shape": [2, 1],
                "datatype": "INT64",
                "data": [7, 8],
                "parameters": {"content_type": "np"},
            },
            id="r1",
            parameters={"x": 1},
            outputs=[{"name": "output-0"}],
        )  # fmt: skip
    )
    assert request.inputs["a"].shape == (2, 3) and request.inputs["b"].shape == (2, 1)
    assert (request.id, request.parameters, request.outputs) == ("r1", {"x": 1}, ["output-0"])
    assert request.rows == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[]", "body: Input should be a valid dictionary"),
        (b"{}", "inputs: Field required"),
        (body({"name": "x"}), "inputs.0.shape: Field required"),
        (body(1), "inputs.0: Input should be a valid dictionary"),
        (body({"name": "x", "shape": [1], "datatype": "FP8", "data": [1]}), "datatype 'FP8'"),
        (body({"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}), "integers from 0"),
        (body({"name": "x", "shape": [True], "datatype": "FP32", "data": [1]}), "integers from 0"),
        (body({"name": "x", "shape": [0, 2**62], "datatype": "FP32", "data": []}), "from 0 to"),
        (body({"name": "x", "shape": [0], "datatype": "FP32", "data": []}), "holds no values"),
        (body({"name": "x", "shape": [1] * 33, "datatype": "FP32", "data": [1]}), "33 dimensions"),
        (body({"name": "x", "shape": [1], "datatype": [], "data": [1]}), r"datatype \[\]"),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, outputs=[{}]),
            "outputs must be a list",
        ),
        (
            body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}, parameters=[]),
            "parameters must be a JSON object",
        ),
        (body({"name": "x", "shape": [2], "datatype": "FP32", "data": [1]}), "holds 2 values"),
        (body({"name": "x", "shape": [1], "datatype": "INT8", "data": ["a"]}), "not INT8"),
        (body({"name": "x", "shape": [1], "datatype": "UINT8", "data": [300]}), "not UINT8"),
        (body(), "has no inputs"),
        (
            body(
                {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
                {"name": "x", "shape": [1], "datatype": "FP32", "data": [2]},
            ),  # fmt: skip
            "given twice",
        ),
    ],
)
def test_bad_requests_name_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_request(raw)


def test_response_round_trips_through_the_generated_types() -> None:
    raw = encode_response(
        {
            "label": np.array([[1], [2]], np.int64),
            "score": np.array([0.5, 0.25], np.float16),
            "name": np.array(["a", b"b"], object),
            "flag": np.array([True, False]),
        },
        model_name="m", model_version="3", request_id="r", parameters={"k": "v"},
    )  # fmt: skip
    response = InferenceResponse.model_validate_json(raw)
    assert (response.model_name, response.model_version, response.id) == ("m", "3", "r")
    outputs = {output.name: output for output in response.outputs}
    assert outputs["label"].shape == [2, 1] and outputs["label"].data.root == [1, 2]
    assert outputs["score"].datatype == "FP16" and outputs["score"].data.root == [0.5, 0.25]
    assert outputs["name"].datatype == "BYTES" and outputs["name"].data.root == ["a", "b"]
    assert outputs["flag"].datatype == "BOOL"
    assert b'"id"' not in encode_response({}, model_name="m", model_version="1", request_id=None)
