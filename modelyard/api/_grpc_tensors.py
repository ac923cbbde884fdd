"""Open Inference Protocol gRPC messages to NumPy and back.

A request's tensors come typed (`contents.fp32_contents`, …, one repeated field per kind of
value) or raw (`raw_input_contents`: one bytes entry per input, little-endian and row-major, a
BYTES element as a 4-byte length and its bytes, as Triton and KServe lay them out). The answer
comes the same way the request came: raw for a raw request (what `tritonclient.grpc` sends, and
the fast way for large tensors), typed otherwise, except that FP16 has no typed field, so an
answer with an FP16 output is raw whole (the protocol lets a message be one or the other only).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
from google.protobuf.internal.containers import MessageMap

from modelyard.errors import InvalidInput
from modelyard.flavors import datatype_of, numpy_dtype
from modelyard.serving import Inference, Request
from modelyard.serving.grpc import oip_pb2 as pb

MAX_DIMENSIONS = 32
"""The most dimensions an input tensor may have (as over HTTP)."""

# Which repeated field of `InferTensorContents` holds each datatype's values.
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
DATATYPES = frozenset({*CONTENTS, "FP16"})

_LENGTH = struct.Struct("<I")


def decode_infer_request(message: pb.ModelInferRequest) -> Request:
    """The request as the data plane takes it; `InvalidInput` names what is wrong."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(
            f"raw_input_contents has {len(raw)} entries for {len(message.inputs)} inputs: "
            "give one per input, in the order of the inputs"
        )
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for index, tensor in enumerate(message.inputs):
        name = tensor.name
        if name in inputs:
            raise InvalidInput(f"input {name!r} is given twice")
        inputs[name] = _decode_input(tensor, raw[index] if raw else None)
    if not inputs:
        raise InvalidInput("the request has no inputs")
    return Request(
        inputs=inputs,
        id=message.id or None,
        parameters=parameters_of(message.parameters),
        outputs=[output.name for output in message.outputs],
    )


def _decode_input(
    tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | None
) -> np.ndarray[Any, Any]:
    name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
    if datatype not in DATATYPES:
        raise InvalidInput(
            f"input {name!r} has datatype {datatype!r}; expected one of "
            f"{', '.join(sorted(DATATYPES))}"
        )
    count = _count(name, shape)
    if raw is None:
        array = _from_contents(name, tensor.contents, datatype, count)
    elif tensor.HasField("contents"):
        raise InvalidInput(
            f"input {name!r} has contents while the request sends raw_input_contents; "
            "a request sends its tensors one way"
        )
    else:
        array = _from_raw(name, raw, datatype, count)
    return array.reshape(shape)


def _count(name: str, shape: list[int]) -> int:
    """How many values `shape` holds, after checking it is one a client may send."""
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidInput(
            f"input {name!r} has {len(shape)} dimensions; at most {MAX_DIMENSIONS} are accepted"
        )
    if any(size < 1 for size in shape):
        raise InvalidInput(
            f"input {name!r} has shape {shape}: sizes must be whole numbers of at least 1"
        )
    return math.prod(shape)


def _from_contents(
    name: str, contents: pb.InferTensorContents, datatype: str, count: int
) -> np.ndarray[Any, Any]:
    if datatype == "FP16":
        raise InvalidInput(f"input {name!r} is FP16, which only raw_input_contents can carry")
    field = CONTENTS[datatype]
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidInput(
            f"input {name!r} has a shape of {count} values, but contents.{field} has {len(values)}"
        )
    if datatype == "BYTES":
        return _strings(list(values))
    dtype = numpy_dtype(datatype)
    if dtype.kind not in "iu":
        return np.array(values, dtype=dtype)
    # INT8 and INT16 ride in int_contents (int32), UINT8 and UINT16 in uint_contents: a value
    # past the datatype's range is an error, not a silent wrap.
    wide = np.array(values, dtype=np.int64 if dtype.kind == "i" else np.uint64)
    limits = np.iinfo(dtype)
    if wide.size and (wide.min() < limits.min or wide.max() > limits.max):
        raise InvalidInput(
            f"input {name!r}: a value of contents.{field} is out of {datatype}'s range "
            f"({limits.min} to {limits.max})"
        )
    return wide.astype(dtype)


def _from_raw(name: str, raw: bytes, datatype: str, count: int) -> np.ndarray[Any, Any]:
    if datatype == "BYTES":
        return _unpack_strings(name, raw, count)
    dtype = numpy_dtype(datatype).newbyteorder("<")
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input {name!r} has a shape of {count} {datatype} values, which is "
            f"{count * dtype.itemsize} bytes, but its raw_input_contents has {len(raw)}"
        )
    array = np.frombuffer(raw, dtype).copy()  # the message's bytes are read-only; models write
    if datatype == "BOOL" and count and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"input {name!r}: BOOL bytes must be 0 or 1")
    return array


def _unpack_strings(name: str, raw: bytes, count: int) -> np.ndarray[Any, Any]:
    """BYTES elements, each a 4-byte little-endian length and that many bytes, filling `raw`."""
    items: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + 4 > len(raw):
            raise InvalidInput(
                f"input {name!r}: its raw_input_contents end after {index} of {count} BYTES "
                "elements (each a 4-byte little-endian length and its bytes)"
            )
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(
                f"input {name!r}: BYTES element {index} is {length} bytes long, past the end "
                "of its raw_input_contents"
            )
        items.append(raw[offset : offset + length])
        offset += length
    if offset != len(raw):
        raise InvalidInput(
            f"input {name!r}: {len(raw) - offset} bytes are left in its raw_input_contents "
            f"after its {count} BYTES elements"
        )
    return _strings(items)


def _strings(items: list[bytes]) -> np.ndarray[Any, Any]:
    """An object array of the elements: UTF-8 text as `str` (as JSON's strings are), other
    bytes as they are."""
    array = np.empty(len(items), dtype=object)
    for index, item in enumerate(items):
        try:
            array[index] = item.decode("utf-8")
        except UnicodeDecodeError:
            array[index] = item
    return array


def parameters_of(parameters: MessageMap[str, pb.InferParameter]) -> dict[str, Any]:
    """`InferParameter`s as plain values (`{"explainer": "shap"}`)."""
    values = {}
    for key, parameter in parameters.items():
        kind = parameter.WhichOneof("parameter_choice")
        values[key] = None if kind is None else getattr(parameter, kind)
    return values


def encode_infer_response(answer: Inference, *, raw: bool) -> pb.ModelInferResponse:
    """The answer as a `ModelInferResponse`: raw bytes when `raw` (or an output is FP16),
    typed contents otherwise."""
    outputs = {name: _canonical(array) for name, array in answer.outputs.items()}
    raw = raw or any(array.dtype == np.float16 for array in outputs.values())
    response = pb.ModelInferResponse(
        model_name=answer.model_name, model_version=answer.model_version, id=answer.id or ""
    )
    for name, array in outputs.items():
        datatype = "BYTES" if array.dtype == object else datatype_of(array.dtype)
        tensor = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(_raw_bytes(array))
        elif datatype == "BYTES":
            tensor.contents.bytes_contents.extend(_element(value) for value in array.flat)
        else:
            getattr(tensor.contents, CONTENTS[datatype]).extend(array.ravel().tolist())
    return response


def _canonical(array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Strings of any kind as an object array; numbers as they are."""
    return array.astype(object) if array.dtype.kind in "OSUT" else array


def _raw_bytes(array: np.ndarray[Any, Any]) -> bytes:
    if array.dtype == object:
        return b"".join(_LENGTH.pack(len(data)) + data for data in map(_element, array.flat))
    return np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()


def _element(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8")
