from __future__ import annotations

import struct

import numpy as np
import orjson
import pytest
import tritonclient.http as triton

from modelyard.errors import InvalidInput
from modelyard.serving import (
    assemble_body,
    decode_request,
    encode_binary_response,
    encode_response,
    parse_header_length,
)
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


# The binary data extension: tensors as raw bytes after the JSON header.


def triton_body(
    *tensors: tuple[str, np.ndarray, str, bool], **options: object
) -> tuple[bytes, int | None]:
    """A request as `tritonclient.http` writes it: (name, array, datatype, binary) per input."""
    inputs = []
    for name, array, datatype, binary in tensors:
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, length = triton.InferenceServerClient.generate_request_body(inputs, **options)
    return bytes(body), length


def binary_body(header: dict[str, object], *tensors: bytes) -> tuple[bytes, int]:
    json = orjson.dumps(header)
    return json + b"".join(tensors), len(json)


def strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@pytest.mark.parametrize(
    ("datatype", "array"),
    [
        ("BOOL", np.array([[True, False]])),
        ("UINT8", np.array([[1, 255]], np.uint8)),
        ("UINT16", np.array([[1, 65535]], np.uint16)),
        ("UINT32", np.array([[1, 2**32 - 1]], np.uint32)),
        ("UINT64", np.array([[1, 2**63]], np.uint64)),
        ("INT8", np.array([[-1, 2]], np.int8)),
        ("INT16", np.array([[-1, 2]], np.int16)),
        ("INT32", np.array([[-1, 2]], np.int32)),
        ("INT64", np.array([[-1, 2**40]], np.int64)),
        ("FP16", np.array([[0.5, np.inf]], np.float16)),
        ("FP32", np.array([[0.5, np.nan]], np.float32)),
        ("FP64", np.array([[0.1, -1e300]], np.float64)),
    ],
)
def test_every_datatype_decodes_from_binary(datatype: str, array: np.ndarray) -> None:
    raw, length = triton_body(("x", array, datatype, True))
    request = decode_request(raw, header_length=length)
    np.testing.assert_array_equal(request.inputs["x"], array)
    assert request.inputs["x"].dtype == array.dtype
    assert request.inputs["x"].flags.writeable and request.inputs["x"].flags.aligned


def test_binary_and_json_inputs_mix_and_bytes_keep_what_is_not_text() -> None:
    words = np.array([["naïve", "b"], ["", "z"]], dtype=object)
    image = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    raw, length = triton_body(
        ("words", words, "BYTES", True),
        ("json", np.array([1, 2], np.int64), "INT64", False),
        ("image", image, "FP32", True),
    )
    request = decode_request(raw, header_length=length)
    assert request.inputs["words"].tolist() == words.tolist()
    assert request.inputs["json"].tolist() == [1, 2]
    np.testing.assert_array_equal(request.inputs["image"], image)
    assert request.binary_data_output and request.wants_binary("anything")
    tensor = {
        "name": "b",
        "shape": [2],
        "datatype": "BYTES",
        "parameters": {"binary_data_size": 15},
    }
    raw, length = binary_body({"inputs": [tensor]}, strings(b"\xff\x00", b"text!"))
    assert decode_request(raw, header_length=length).inputs["b"].tolist() == [b"\xff\x00", "text!"]


def test_an_assembled_body_is_read_in_place_and_a_read_only_one_is_copied() -> None:
    image = np.arange(3 * 8 * 8, dtype=np.float32).reshape(1, 3, 8, 8)
    raw, length = triton_body(("image", image, "FP32", True))
    assert length is not None
    chunks = [raw[i : i + 100] for i in range(0, len(raw), 100)]
    body = assemble_body(chunks, header_length=length)
    assert bytes(body) == raw
    decoded = decode_request(body, header_length=length).inputs["image"]
    assert decoded.ctypes.data % 64 == 0  # aligned, and the body's own memory
    assert np.shares_memory(decoded, np.frombuffer(body, np.uint8))
    decoded[0, 0, 0, 0] = -1  # a model may write to its input
    np.testing.assert_array_equal(decoded.ravel()[1:], image.ravel()[1:])
    copied = decode_request(raw, header_length=length).inputs["image"]  # bytes are read-only
    assert copied.flags.writeable and not np.shares_memory(copied, np.frombuffer(raw, np.uint8))


def test_requested_outputs_choose_binary_one_by_one() -> None:
    raw, length = triton_body(
        ("x", np.zeros(1, np.float32), "FP32", True),
        outputs=[triton.InferRequestedOutput("a"), triton.InferRequestedOutput("b", False)],
    )
    request = decode_request(raw, header_length=length)
    assert request.outputs == ["a", "b"] and not request.binary_data_output
    assert (request.wants_binary("a"), request.wants_binary("b")) == (True, False)
    plain = decode_request(body({"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}))
    assert not plain.wants_binary("output-0")


def _input(size: object = 8, **item: object) -> dict[str, object]:
    return {"name": "x", "shape": [2], "datatype": "FP32",
            "parameters": {"binary_data_size": size}, **item}  # fmt: skip


@pytest.mark.parametrize(
    ("header", "tensors", "length", "message"),
    [
        ({"inputs": [_input()]}, b"\0" * 8, 10_000, "Inference-Header-Content-Length is 10000"),
        ({"inputs": [_input(size=12)]}, b"\0" * 8, None, "runs past the end of the body"),
        ({"inputs": [_input(size=4)]}, b"\0" * 4, None, "which is 8 bytes, but its binary_data"),
        ({"inputs": [_input()]}, b"\0" * 12, None, "binary_data_size add up to 8"),
        ({"inputs": [_input(size=-1)]}, b"", None, "must be a whole number of bytes, got -1"),
        ({"inputs": [_input(size="8")]}, b"\0" * 8, None, "whole number of bytes, got '8'"),
        ({"inputs": [_input(size=True)]}, b"\0", None, "whole number of bytes, got True"),
        ({"inputs": [_input(data=[1, 2])]}, b"\0" * 8, None, "both data and parameters.binary"),
        (
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]},
            b"",
            None,
            "neither data nor parameters.binary_data_size",
        ),  # fmt: skip
        ({"inputs": [_input(size=2, datatype="BOOL")]}, b"\0\2", None, "0 or 1"),
        (
            {"inputs": [_input(size=8, datatype="BYTES")]},
            strings(b"a") + b"\0\0\0",
            None,
            "ends after 1 of 2 BYTES elements",
        ),  # fmt: skip
        (
            {"inputs": [_input(size=5, datatype="BYTES", shape=[2**31 - 1] * 4)]},
            strings(b"a"),
            None,
            "5 bytes cannot hold 21267647892944572736998860269687930881 BYTES elements",
        ),  # fmt: skip
        (
            {"inputs": [_input(size=9, datatype="BYTES")]},
            strings(b"a") + b"\x09\0\0\0",
            None,
            "BYTES element 1 is 9 bytes long",
        ),  # fmt: skip
        (
            {"inputs": [_input(size=12, datatype="BYTES")]},
            strings(b"a", b"b") + b"xx",
            None,
            "2 bytes are left after its 2 BYTES elements",
        ),  # fmt: skip
        ({"inputs": [_input(datatype="FP8")]}, b"\0" * 8, None, "datatype 'FP8'"),
        ({"inputs": [_input(shape=[0])]}, b"", None, "holds no values"),
        (
            {"inputs": [_input()], "parameters": {"binary_data_output": 1}},
            b"\0" * 8,
            None,
            "parameters.binary_data_output must be true or false, got 1",
        ),  # fmt: skip
        (
            {
                "inputs": [_input()],
                "outputs": [{"name": "y", "parameters": {"binary_data": "yes"}}],
            },
            b"\0" * 8,
            None,
            "output 'y': parameters.binary_data must be true or false",
        ),  # fmt: skip
        (
            {"inputs": [_input()], "outputs": [{"name": "y", "parameters": 3}]},
            b"\0" * 8,
            None,
            "output 'y': parameters must be a JSON object",
        ),  # fmt: skip
    ],
)
def test_bad_binary_requests_name_the_problem(
    header: dict[str, object], tensors: bytes, length: int | None, message: str
) -> None:
    raw, json_length = binary_body(header, tensors)
    with pytest.raises(InvalidInput, match=message):
        decode_request(raw, header_length=json_length if length is None else length)


def test_binary_sizes_without_the_header_and_a_bad_header() -> None:
    raw, _ = binary_body({"inputs": [_input()]}, b"\0" * 8)
    with pytest.raises(InvalidInput, match="no Inference-Header-Content-Length header"):
        decode_request(raw[: raw.index(b"}]}") + 3])
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode_request(raw, header_length=3)
    with pytest.raises(InvalidInput, match="binary tensors after the JSON need the Inference-"):
        decode_request(raw)
    with pytest.raises(InvalidInput, match="inputs.0.data: Field required"):
        decode_request(body({"name": "x", "shape": [1], "datatype": "FP32"}))
    assert parse_header_length(b"42") == 42 and parse_header_length("7") == 7
    for bad in (b"-1", b"", b"4x", "1e3", "\u00b2".encode("latin-1"), "9" * 5000):
        with pytest.raises(InvalidInput, match="must be a whole number of bytes"):
            parse_header_length(bad)


def test_binary_response_reads_back_with_the_triton_client() -> None:
    outputs = {
        "image": np.arange(12, dtype=np.float32).reshape(1, 3, 4),
        "big": np.arange(4, dtype=">i4"),  # another byte order goes out little-endian
        "flag": np.array([True, False]),
        "words": np.array([["a", "é"], [b"\xff", 3]], dtype=object),
        "text": np.array(["x", "yz"]),
        "json": np.array([0.5, 1.5], np.float64),
    }
    raw, length = encode_binary_response(
        outputs, model_name="m", model_version="2", request_id="r", parameters={"k": 1},
        binary=lambda name: name != "json",
    )  # fmt: skip
    header = orjson.loads(raw[:length])
    assert (header["model_name"], header["id"], header["parameters"]) == ("m", "r", {"k": 1})
    assert header["outputs"][5] == {
        "name": "json", "datatype": "FP64", "shape": [2], "data": [0.5, 1.5]
    }  # fmt: skip
    result = triton.InferenceServerClient.parse_response_body(raw, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("image"), outputs["image"])
    np.testing.assert_array_equal(result.as_numpy("big"), np.arange(4))
    assert result.as_numpy("flag").tolist() == [True, False]
    assert result.as_numpy("words").tolist() == [[b"a", "é".encode()], [b"\xff", b"3"]]
    assert result.as_numpy("text").tolist() == [b"x", b"yz"]
    np.testing.assert_array_equal(result.as_numpy("json"), [0.5, 1.5])
    raw, length = encode_binary_response(
        {"y": np.zeros(1)}, model_name="m", model_version="1", request_id=None,
        binary=lambda name: True,
    )  # fmt: skip
    assert b'"id"' not in raw[:length] and len(raw) == length + 8
