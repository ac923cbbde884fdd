"""Open Inference Protocol JSON to NumPy and back, without a Python loop over elements.

The hot path parses with orjson and hands each input's (possibly nested) `data` list to NumPy in
one call. When a body does not have the protocol's shape, the generated pydantic types
(`_oip.py`) are asked what is wrong, so the 400 names the field. Tensors sent as raw bytes after
the JSON (the binary data extension) are read by `_binary.py`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeAlias

import numpy as np
import orjson
from pydantic import ValidationError

from modelyard.errors import InvalidInput
from modelyard.flavors import datatype_of, numpy_dtype
from modelyard.serving._binary import HEADER, BinaryData, tensor_bytes
from modelyard.serving._oip import InferenceRequest

Buffer: TypeAlias = bytes | bytearray | memoryview

_DATATYPES = frozenset(
    "BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 BYTES".split()
)

MAX_DIMENSIONS = 32
"""The most dimensions an input tensor may have (NumPy itself stops at 64)."""

MAX_SIZE = 2**31 - 1
"""The largest size of one dimension; the data sent must fill the whole shape anyway."""


@dataclass(slots=True)
class Request:
    """A decoded inference request: inputs by name, as arrays of their declared shape."""

    inputs: dict[str, np.ndarray[Any, Any]]
    id: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    binary_outputs: dict[str, bool] = field(default_factory=dict)
    """Each requested output's `binary_data` parameter, where it has one."""
    binary_data_output: bool = False
    """The request's `binary_data_output` parameter: outputs not named above go as raw bytes."""

    def wants_binary(self, output: str) -> bool:
        """Whether `output` is to be answered as raw bytes (the binary data extension)."""
        return self.binary_outputs.get(output, self.binary_data_output)

    @property
    def rows(self) -> int:
        """The batch size: the first dimension of the inputs (1 for scalars)."""
        first = next(iter(self.inputs.values()))
        return int(first.shape[0]) if first.ndim else 1


def decode_request(body: Buffer, *, header_length: int | None = None) -> Request:
    """Parse an OIP inference request; `InvalidInput` names what is wrong.

    With `header_length` (the request's `Inference-Header-Content-Length`) the JSON is the
    body's first `header_length` bytes, and the inputs whose `parameters.binary_data_size` say
    so are read, in order, from the bytes after it."""
    view = memoryview(body)
    tensors: BinaryData | None = None
    if header_length is not None:
        if header_length > len(view):
            raise InvalidInput(
                f"{HEADER} is {header_length} but the body has only {len(view)} bytes"
            )
        tensors = BinaryData(view[header_length:])
        view = view[:header_length]
    try:
        document = orjson.loads(view)
    except orjson.JSONDecodeError as error:
        hint = ""
        if header_length is None and "after document" in str(error):
            hint = f"; binary tensors after the JSON need the {HEADER} header"
        raise InvalidInput(f"the request body is not valid JSON: {error}{hint}") from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        _explain(document)
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for item in document["inputs"]:
        if not isinstance(item, dict):
            _explain(document)
        name, array = _decode_input(item, document, tensors)
        if name in inputs:
            raise InvalidInput(f"input {name!r} is given twice")
        inputs[name] = array
    if not inputs:
        raise InvalidInput("the request has no inputs")
    if tensors is not None:
        tensors.finish()
    request_id = document.get("id")
    parameters = _parameters(document.get("parameters"), "parameters")
    outputs = _outputs(document.get("outputs"))
    return Request(
        inputs=inputs,
        id=None if request_id is None else str(request_id),
        parameters=parameters,
        outputs=list(outputs),
        binary_outputs={
            name: _flag(params, "binary_data", f"output {name!r}: parameters.binary_data")
            for name, params in outputs.items()
            if "binary_data" in params
        },
        binary_data_output=_flag(parameters, "binary_data_output", "parameters.binary_data_output"),
    )


def _decode_input(
    item: dict[str, Any], document: Any, tensors: BinaryData | None
) -> tuple[str, np.ndarray[Any, Any]]:
    name, shape, datatype, data = (item.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not isinstance(shape, list):
        _explain(document)
    parameters = _parameters(item.get("parameters"), f"input {name!r}: parameters")
    size = parameters.get("binary_data_size")
    if data is None and size is None:
        if tensors is None:
            _explain(document)
        raise InvalidInput(f"input {name!r} has neither data nor parameters.binary_data_size")
    if not isinstance(datatype, str) or datatype not in _DATATYPES:
        raise InvalidInput(
            f"input {name!r} has datatype {datatype!r}; expected one of "
            f"{', '.join(sorted(_DATATYPES))}"
        )
    expected = _check_shape(name, shape)
    if size is not None:
        if data is not None:
            raise InvalidInput(
                f"input {name!r} has both data and parameters.binary_data_size; send one"
            )
        if tensors is None:
            raise InvalidInput(
                f"input {name!r} has parameters.binary_data_size, but the request has no "
                f"{HEADER} header saying where its JSON ends"
            )
        return name, tensors.read(name, shape, datatype, size)
    try:
        if datatype == "BYTES":
            array = np.array(data, dtype=object)
        else:  # a value past the type's range is an error, not a silent inf
            with np.errstate(over="raise", invalid="raise"):
                array = np.asarray(data, dtype=numpy_dtype(datatype))
    except (ValueError, TypeError, OverflowError, FloatingPointError) as error:
        raise InvalidInput(f"input {name!r}: data are not {datatype} values ({error})") from None
    if array.size != expected:
        raise InvalidInput(
            f"input {name!r} has shape {shape}, which holds {expected} values, "
            f"but its data has {array.size}"
        )
    return name, array.reshape(shape)


def _check_shape(name: str, shape: list[Any]) -> int:
    """How many values `shape` holds, after checking that it is a shape a client may send: at
    most `MAX_DIMENSIONS` sizes, each an integer (JSON `true` is not one) from 1 to
    `MAX_SIZE`. The product is taken over Python integers, so it cannot overflow, and is then
    compared with the data actually sent; an empty tensor is refused (no model answers one)."""
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidInput(
            f"input {name!r} has {len(shape)} dimensions; at most {MAX_DIMENSIONS} are accepted"
        )
    for size in shape:
        if type(size) is not int or not 0 <= size <= MAX_SIZE:
            raise InvalidInput(
                f"input {name!r} has shape {shape}: sizes must be integers from 0 to {MAX_SIZE}"
            )
    if 0 in shape:
        raise InvalidInput(f"input {name!r} has shape {shape}, which holds no values")
    return math.prod(shape)


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"{where} must be a JSON object, got {type(value).__name__}")
    return value


def _outputs(value: Any) -> dict[str, dict[str, Any]]:
    """The requested outputs: each name with its parameters."""
    if value is None:
        return {}
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
    ):
        raise InvalidInput('outputs must be a list of objects such as {"name": "output-0"}')
    return {
        item["name"]: _parameters(item.get("parameters"), f"output {item['name']!r}: parameters")
        for item in value
    }


def _flag(parameters: dict[str, Any], key: str, where: str) -> bool:
    value = parameters.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"{where} must be true or false, got {value!r}")
    return value


def _explain(document: Any) -> NoReturn:
    """Raise `InvalidInput` with pydantic's account of how `document` is not a request."""
    try:
        InferenceRequest.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise InvalidInput(f"invalid inference request: {where}: {first['msg']}") from None
    raise InvalidInput("invalid inference request")  # pragma: no cover - pydantic accepted it


def encode_response(
    outputs: dict[str, np.ndarray[Any, Any]],
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    parameters: dict[str, Any] | None = None,
) -> bytes:
    """An OIP inference response as JSON bytes; arrays are written by orjson directly."""
    document: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": [encode_output(name, array) for name, array in outputs.items()],
    }
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = parameters
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)


def encode_binary_response(
    outputs: dict[str, np.ndarray[Any, Any]],
    *,
    model_name: str,
    model_version: str,
    request_id: str | None,
    binary: Callable[[str], bool],
    parameters: dict[str, Any] | None = None,
) -> tuple[bytes, int]:
    """An OIP inference response with the outputs `binary` picks as raw bytes after the JSON
    (the binary data extension); the body and the JSON header's length, which the transport
    sends as `Inference-Header-Content-Length`."""
    document: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id is not None:
        document["id"] = request_id
    if parameters:
        document["parameters"] = parameters
    encoded: list[dict[str, Any]] = []
    tensors: list[bytes | memoryview] = []
    for name, array in outputs.items():
        if not binary(name):
            encoded.append(encode_output(name, array))
            continue
        datatype, data = tensor_bytes(array)
        tensors.append(data)
        encoded.append({
            "name": name, "datatype": datatype, "shape": list(array.shape),
            "parameters": {"binary_data_size": len(data)},
        })  # fmt: skip
    document["outputs"] = encoded
    header = orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"".join([header, *tensors]), len(header)


def encode_output(name: str, array: np.ndarray[Any, Any]) -> dict[str, Any]:
    """One output tensor: flat data in row-major order, its shape and datatype."""
    if array.dtype.kind in "OSUT":
        data: Any = [_text(value) for value in array.ravel().tolist()]
        datatype = "BYTES"
    else:
        datatype = datatype_of(array.dtype)
        data = np.ascontiguousarray(array).ravel()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
