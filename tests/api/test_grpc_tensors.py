"""Open Inference Protocol gRPC messages to NumPy and back: every datatype typed and raw, and a
named `InvalidInput` for each way a message can be wrong."""

from __future__ import annotations

import struct
from typing import Any

import grpc
import numpy as np
import pytest

from modelyard.api._grpc import _answering, _client
from modelyard.api._grpc_tensors import (
    CONTENTS,
    decode_infer_request,
    encode_infer_response,
    parameters_of,
)
from modelyard.errors import InvalidInput
from modelyard.flavors import numpy_dtype
from modelyard.serving import Inference
from modelyard.serving.grpc import oip_pb2 as pb

Tensor = pb.ModelInferRequest.InferInputTensor


def typed(name: str, datatype: str, shape: list[int], values: list[Any]) -> Tensor:
    tensor = Tensor(name=name, datatype=datatype, shape=shape)
    getattr(tensor.contents, CONTENTS[datatype]).extend(values)
    return tensor


def request(*inputs: Tensor, raw: list[bytes] | None = None, **fields: Any) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="m", inputs=inputs, raw_input_contents=raw or [],
                                **fields)  # fmt: skip


def strings(*items: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@pytest.mark.parametrize("datatype", sorted(CONTENTS))
def test_every_datatype_decodes_typed_and_raw(datatype: str) -> None:
    values = ["a", "bé"] if datatype == "BYTES" else [1, 0]
    typed_request = request(typed("x", datatype, [2, 1], [
        value.encode() if isinstance(value, str) else value for value in values
    ]))  # fmt: skip
    decoded = decode_infer_request(typed_request).inputs["x"]
    if datatype == "BYTES":
        raw = strings(*(value.encode() for value in values))  # type: ignore[union-attr]
    else:
        raw = np.asarray(values, numpy_dtype(datatype).newbyteorder("<")).tobytes()
    raw_request = request(Tensor(name="x", datatype=datatype, shape=[2, 1]), raw=[raw])
    from_raw = decode_infer_request(raw_request).inputs["x"]
    assert decoded.shape == from_raw.shape == (2, 1)
    assert decoded.ravel().tolist() == from_raw.ravel().tolist() == values
    if datatype != "BYTES":
        assert decoded.dtype == from_raw.dtype == numpy_dtype(datatype)
        from_raw[0, 0] = 1  # a model may write to its input


def test_fp16_travels_raw_only() -> None:
    half = np.array([1.5, 2.0], np.float16)
    raw = request(Tensor(name="x", datatype="FP16", shape=[2]), raw=[half.tobytes()])
    assert decode_infer_request(raw).inputs["x"].tolist() == [1.5, 2.0]
    with pytest.raises(InvalidInput, match="FP16, which only raw_input_contents can carry"):
        decode_infer_request(request(Tensor(name="x", datatype="FP16", shape=[2])))


def test_request_fields_are_kept() -> None:
    wanted = [pb.ModelInferRequest.InferRequestedOutputTensor(name="label")]
    message = request(typed("x", "FP32", [1], [1.0]), id="r7", outputs=wanted)
    message.parameters["explainer"].string_param = "shap"
    message.parameters["top"].int64_param = 3
    message.parameters["empty"].SetInParent()
    decoded = decode_infer_request(message)
    assert (decoded.id, decoded.outputs) == ("r7", ["label"])
    assert decoded.parameters == {"explainer": "shap", "top": 3, "empty": None}
    assert decode_infer_request(request(typed("x", "FP32", [1], [1.0]))).id is None
    assert parameters_of(pb.ModelInferRequest().parameters) == {}


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (request(), "the request has no inputs"),
        (request(typed("x", "FP32", [1], [1]), typed("x", "FP32", [1], [1])), "given twice"),
        (request(Tensor(name="x", datatype="FP33", shape=[1])), "'FP33'; expected one of BOOL"),
        (request(typed("x", "FP32", [2, 0], [])), r"shape \[2, 0\]: sizes must be"),
        (request(typed("x", "FP32", [-1], [1])), r"shape \[-1\]"),
        (request(typed("x", "FP32", [1] * 33, [1])), "33 dimensions; at most 32"),
        (request(typed("x", "FP32", [3], [1, 2])), "3 values, but contents.fp32_contents has 2"),
        (request(typed("x", "INT8", [1], [300])), "out of INT8's range"),
        (request(typed("x", "UINT16", [1], [70000])), "out of UINT16's range"),
        (request(Tensor(name="x", datatype="FP32", shape=[1]), raw=[b"", b""]), "2 entries for 1"),
        (request(typed("x", "FP32", [1], [1]), raw=[b"\0" * 4]), "has contents while the"),
        (request(Tensor(name="x", datatype="FP32", shape=[2]), raw=[b"\0" * 4]),
         "which is 8 bytes, but its raw_input_contents has 4"),
        (request(Tensor(name="x", datatype="BOOL", shape=[1]), raw=[b"\2"]), "BOOL bytes"),
        (request(Tensor(name="x", datatype="BYTES", shape=[2]), raw=[strings(b"a")]),
         "end after 1 of 2 BYTES elements"),
        (request(Tensor(name="x", datatype="BYTES", shape=[1]), raw=[b"\x09\0\0\0ab"]),
         "BYTES element 0 is 9 bytes long"),
        (request(Tensor(name="x", datatype="BYTES", shape=[1]), raw=[strings(b"a") + b"z"]),
         "1 bytes are left"),
    ],
)  # fmt: skip
def test_what_is_wrong_is_named(message: pb.ModelInferRequest, expected: str) -> None:
    with pytest.raises(InvalidInput, match=expected):
        decode_infer_request(message)


def test_bytes_that_are_not_text_stay_bytes() -> None:
    decoded = decode_infer_request(request(typed("x", "BYTES", [2], [b"ok", b"\xff"])))
    assert decoded.inputs["x"].tolist() == ["ok", b"\xff"]


def answer(**outputs: np.ndarray[Any, Any]) -> Inference:
    return Inference("m", "2", dict(outputs), "r1")


def test_answers_typed_or_raw_as_asked() -> None:
    labels = np.array(["cat", "dog"])
    scores = np.array([[0.5, 0.25]], np.float32)
    typed_answer = encode_infer_response(answer(label=labels, score=scores), raw=False)
    assert (typed_answer.model_name, typed_answer.model_version, typed_answer.id) == (
        "m", "2", "r1"
    )  # fmt: skip
    label, score = typed_answer.outputs
    assert (label.datatype, list(label.shape), list(label.contents.bytes_contents)) == (
        "BYTES", [2], [b"cat", b"dog"]
    )  # fmt: skip
    assert (score.datatype, list(score.shape), list(score.contents.fp32_contents)) == (
        "FP32", [1, 2], [0.5, 0.25]
    )  # fmt: skip
    raw_answer = encode_infer_response(answer(label=labels, score=scores), raw=True)
    assert not raw_answer.outputs[0].HasField("contents")
    assert raw_answer.raw_output_contents[0] == strings(b"cat", b"dog")
    assert np.frombuffer(raw_answer.raw_output_contents[1], "<f4").tolist() == [0.5, 0.25]


def test_an_fp16_output_makes_the_whole_answer_raw() -> None:
    half = np.array([1.5], np.float16)
    encoded = encode_infer_response(answer(a=np.array([1], np.int64), b=half), raw=False)
    assert len(encoded.raw_output_contents) == 2
    assert [output.datatype for output in encoded.outputs] == ["INT64", "FP16"]
    assert np.frombuffer(encoded.raw_output_contents[1], "<f2").tolist() == [1.5]


class Context:
    """What `_answering` and `_client` ask of grpc's servicer context."""

    def __init__(self, peer: str = "ipv6:[::1]:5000") -> None:
        self._peer = peer
        self.aborted: tuple[Any, ...] = ()

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: Any, details: str, trailing_metadata: Any = ()) -> None:
        self.aborted = (code, details, trailing_metadata)
        raise grpc.RpcError(details)


@pytest.mark.anyio
async def test_a_bug_of_ours_is_internal_and_the_server_goes_on() -> None:
    async def broken(request: Any, context: Any) -> Any:
        raise KeyError("oops")

    context = Context()
    with pytest.raises(grpc.RpcError):
        await _answering(broken)(pb.ModelInferRequest(), context)  # type: ignore[arg-type]
    code, details, metadata = context.aborted
    assert code == grpc.StatusCode.INTERNAL and "internal error: 'oops'" in details
    assert metadata == (("modelyard-error-code", "modelyard_error"),)


def test_the_client_address_comes_from_the_peer() -> None:
    assert _client(Context("ipv4:127.0.0.1:5000")) == "127.0.0.1"  # type: ignore[arg-type]
    assert _client(Context("ipv6:[::1]:5000")) == "::1"  # type: ignore[arg-type]
    assert _client(Context("unix:/tmp/socket")) is None  # type: ignore[arg-type]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
