"""Open Inference Protocol JSON to NumPy and back, without a Python loop over elements.

The hot path parses with orjson and hands each input's (possibly nested) `data` list to NumPy in
one call. When a body does not have the protocol's shape, the generated pydantic types
(`_oip.py`) are asked what is wrong, so the 400 names the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import orjson
from pydantic import ValidationError

from modelyard.errors import InvalidInput
from modelyard.flavors import datatype_of, numpy_dtype
from modelyard.serving._oip import InferenceRequest

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

    @property
    def rows(self) -> int:
        """The batch size: the first dimension of the inputs (1 for scalars)."""
        first = next(iter(self.inputs.values()))
        return int(first.shape[0]) if first.ndim else 1


def decode_request(body: bytes) -> Request:
    """Parse an OIP inference request; `InvalidInput` names what is wrong."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"the request body is not valid JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        _explain(document)
    inputs: dict[str, np.ndarray[Any, Any]] = {}
    for item in document["inputs"]:
        if not isinstance(item, dict):
            _explain(document)
        name, array = _decode_input(item, document)
        if name in inputs:
            raise InvalidInput(f"input {name!r} is given twice")
        inputs[name] = array
    if not inputs:
        raise InvalidInput("the request has no inputs")
    request_id = document.get("id")
    return Request(
        inputs=inputs,
        id=None if request_id is None else str(request_id),
        parameters=_parameters(document.get("parameters"), "parameters"),
        outputs=_output_names(document.get("outputs")),
    )


def _decode_input(item: dict[str, Any], document: Any) -> tuple[str, np.ndarray[Any, Any]]:
    name, shape, datatype, data = (item.get(k) for k in ("name", "shape", "datatype", "data"))
    if not isinstance(name, str) or not isinstance(shape, list) or data is None:
        _explain(document)
    if not isinstance(datatype, str) or datatype not in _DATATYPES:
        raise InvalidInput(
            f"input {name!r} has datatype {datatype!r}; expected one of "
            f"{', '.join(sorted(_DATATYPES))}"
        )
    _parameters(item.get("parameters"), f"input {name!r}: parameters")
    expected = _check_shape(name, shape)
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


def _output_names(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(item, dict) and isinstance(item.get("name"), str) for item in value
    ):
        raise InvalidInput('outputs must be a list of objects such as {"name": "output-0"}')
    return [item["name"] for item in value]


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
