"""Signatures: named, typed, shaped inputs and outputs in Open Inference Protocol datatypes.

A signature is inferred from an input example (a NumPy array, a pandas DataFrame with per-column
dtypes, or a dict of arrays) and from what the model returns for it. The first dimension is the
batch and is recorded as -1; `content_type` says how the inputs are put back together for the
model (`np`: one array, `pd`: one column per input, `dict`: one array per key), as MLServer's
codecs do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelyard.errors import InvalidInput

ContentType = Literal["np", "pd", "dict"]

_DATATYPES = {
    "b": "BOOL",
    "u1": "UINT8",
    "u2": "UINT16",
    "u4": "UINT32",
    "u8": "UINT64",
    "i1": "INT8",
    "i2": "INT16",
    "i4": "INT32",
    "i8": "INT64",
    "f2": "FP16",
    "f4": "FP32",
    "f8": "FP64",
}
_NUMPY_TYPES = {
    datatype: np.dtype(bool if code == "b" else code) for code, datatype in _DATATYPES.items()
}


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The OIP datatype of a NumPy dtype (`BYTES` for strings, bytes and objects)."""
    if dtype.kind == "b":
        return "BOOL"
    if dtype.kind in "OSUT":
        return "BYTES"
    code = f"{dtype.kind}{dtype.itemsize}"
    if code not in _DATATYPES:
        raise InvalidInput(f"dtype {dtype} has no Open Inference Protocol datatype")
    return _DATATYPES[code]


def numpy_dtype(datatype: str) -> np.dtype[Any]:
    """The NumPy dtype for an OIP datatype (`object` for `BYTES`)."""
    if datatype == "BYTES":
        return np.dtype(object)
    try:
        return _NUMPY_TYPES[datatype]
    except KeyError:
        raise InvalidInput(f"unknown datatype {datatype!r}") from None


class TensorSpec(BaseModel):
    """One named input or output: OIP datatype and shape (-1 where any size goes)."""

    model_config = ConfigDict(frozen=True)

    name: str
    datatype: str
    shape: list[int]


class Signature(BaseModel):
    """What a model takes and returns."""

    model_config = ConfigDict(frozen=True)

    inputs: list[TensorSpec]
    outputs: list[TensorSpec] = Field(default_factory=list)
    content_type: ContentType = "np"

    def input(self, name: str) -> TensorSpec:
        """The input called `name`."""
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise InvalidInput(
            f"unknown input {name!r}; the model takes {', '.join(s.name for s in self.inputs)}"
        )

    def check(self, inputs: Any) -> None:
        """Raise `InvalidInput` naming the first input that is missing, mistyped or misshapen."""
        given = _columns(inputs)
        if self.content_type == "np" and len(given) == 1 and len(self.inputs) == 1:
            given = {self.inputs[0].name: next(iter(given.values()))}
        for spec in self.inputs:
            if spec.name not in given:
                raise InvalidInput(
                    f"missing input {spec.name!r}; the model takes "
                    f"{', '.join(s.name for s in self.inputs)}"
                )
            _check_one(spec, np.asarray(given[spec.name]))

    def to_json(self) -> dict[str, Any]:
        """The signature as stored with a version."""
        return self.model_dump(mode="json")


def infer_signature(example: Any, output: Any = None) -> Signature:
    """The signature of a model that takes `example` and returns `output`.

    >>> infer_signature(np.zeros((2, 4), np.float32), np.zeros(2, np.int64)).inputs[0]
    TensorSpec(name='input-0', datatype='FP32', shape=[-1, 4])
    """
    content_type = content_type_of(example)
    inputs = _specs(example, prefix="input")
    outputs = [] if output is None else _specs(output, prefix="output")
    return Signature(inputs=inputs, outputs=outputs, content_type=content_type)


def content_type_of(value: Any) -> ContentType:
    """`pd` for a DataFrame, `dict` for a mapping of arrays, `np` for anything array-like."""
    if _is_dataframe(value):
        return "pd"
    if isinstance(value, Mapping):
        return "dict"
    return "np"


def named_arrays(value: Any) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays a model is given, by input name, as a server sees them: a DataFrame's
    columns, a dict's values, or one array as `input-0`."""
    return _columns(value)


def _specs(value: Any, *, prefix: str) -> list[TensorSpec]:
    columns = _columns(value, prefix)
    return [
        TensorSpec(name=name, datatype=datatype_of(array.dtype), shape=[-1, *array.shape[1:]])
        for name, array in columns.items()
    ]


def _columns(value: Any, prefix: str = "input") -> dict[str, np.ndarray[Any, Any]]:
    if _is_dataframe(value):
        return {str(name): _column(value[name]) for name in value.columns}
    if isinstance(value, Mapping):
        return {str(name): np.asarray(array) for name, array in value.items()}
    if isinstance(value, tuple):
        return {f"{prefix}-{i}": np.asarray(array) for i, array in enumerate(value)}
    array = _array(value)
    if array.ndim == 0:
        array = array.reshape(1)
    return {f"{prefix}-0": array}


def _column(series: Any) -> np.ndarray[Any, Any]:
    # pandas string, categorical and nullable dtypes become plain NumPy arrays of their values
    dtype = series.dtype
    if getattr(dtype, "kind", "O") in "biufc" and isinstance(dtype, np.dtype):
        return np.asarray(series.to_numpy())
    if str(dtype) == "bool":
        return np.asarray(series.to_numpy(dtype=bool))
    numpy_dtype = getattr(dtype, "numpy_dtype", None)
    if numpy_dtype is not None and numpy_dtype.kind in "biuf" and not series.isna().any():
        return np.asarray(series.to_numpy(dtype=numpy_dtype))
    return np.asarray(series.astype(object).to_numpy())


def _array(value: Any) -> np.ndarray[Any, Any]:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without torch
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


def _is_dataframe(value: Any) -> bool:
    # pandas 3 names the class pandas.DataFrame, earlier ones pandas.core.frame.DataFrame
    return any(
        cls.__qualname__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"
        for cls in type(value).__mro__
    )


def _check_one(spec: TensorSpec, array: np.ndarray[Any, Any]) -> None:
    if spec.datatype == "BYTES":
        if array.dtype.kind not in "OSUT":
            raise InvalidInput(
                f"input {spec.name!r} must be strings or bytes (BYTES), got {array.dtype}"
            )
    else:
        expected = numpy_dtype(spec.datatype)
        if array.dtype.kind in "OSUT" or not np.can_cast(array.dtype, expected, "same_kind"):
            if not (array.dtype.kind in "iub" and expected.kind == "f"):
                raise InvalidInput(
                    f"input {spec.name!r} must be {spec.datatype}, got {datatype_or_kind(array)}"
                )
    if array.ndim != len(spec.shape):
        raise InvalidInput(
            f"input {spec.name!r} must have shape {spec.shape} ({len(spec.shape)} dimensions), "
            f"got {list(array.shape)}"
        )
    for expected_size, size in zip(spec.shape, array.shape, strict=True):
        if expected_size != -1 and expected_size != size:
            raise InvalidInput(
                f"input {spec.name!r} must have shape {spec.shape}, got {list(array.shape)}"
            )


def datatype_or_kind(array: np.ndarray[Any, Any]) -> str:
    """The OIP datatype of an array, or its NumPy dtype when it has none."""
    try:
        return datatype_of(array.dtype)
    except InvalidInput:
        return str(array.dtype)
