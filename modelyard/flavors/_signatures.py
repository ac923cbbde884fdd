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

from modelyard._imports import require
from modelyard.errors import InvalidInput

Array = np.ndarray[Any, Any]
_PLAIN = (dict, list, tuple, np.ndarray, str, bytes)
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
        """Raise `InvalidInput` naming what is missing, unknown, mistyped or misshapen (one
        array for a model of one array input is taken whatever its name)."""
        given = _columns(inputs)
        if self.content_type == "np" and len(given) == 1 and len(self.inputs) == 1:
            given = {self.inputs[0].name: next(iter(given.values()))}
        self.conform(given)

    def conform(self, inputs: Any, *, model: str = "the model") -> dict[str, Array]:
        """The arrays the model takes, by input name in the signature's order: named inputs
        (a DataFrame's columns, a dict's keys, OIP inputs) are reordered by name, and values are
        cast only where no value changes (see `conform_array`). An unnamed value (an array, a
        list, a tensor) is the input of a model that takes one; a tuple gives the inputs in
        order. `InvalidInput` names every missing and unknown input at once, else the first
        mistyped or misshapen one; `model` names the model in the message."""
        return self._conformed(inputs, model)[1]

    def prepare(self, inputs: Any, *, model: str = "the model") -> Any:
        """`inputs` as the model takes them, after `conform`: what needed nothing is passed on
        as it is (a DataFrame keeps its pandas dtypes); a DataFrame is reordered and cast column
        by column; anything else is rebuilt by `model_input`."""
        given, arrays = self._conformed(inputs, model)
        same = list(given) == list(arrays) and all(given[n] is a for n, a in arrays.items())
        if _is_dataframe(inputs) and self._by_columns():
            return inputs if same else _reframed(inputs, given, arrays)
        if isinstance(inputs, tuple) and len(self.inputs) > 1:
            return inputs if same else tuple(arrays.values())
        if same and not (isinstance(inputs, Mapping) and self.content_type != "dict"):
            return inputs
        return self.model_input(arrays)

    def model_input(self, arrays: Mapping[str, Array]) -> Any:
        """Conformed arrays put together as the model was saved: a DataFrame of one column per
        input (`pd`), the dict (`dict`, or several arrays), or the one array."""
        if self.content_type == "pd":
            pandas = require("pandas", extra="pandas")
            return pandas.DataFrame({name: _flat(array) for name, array in arrays.items()})
        if self.content_type == "dict" or len(arrays) > 1:
            return dict(arrays)
        return next(iter(arrays.values()))

    def _by_columns(self) -> bool:
        # A DataFrame is one array for a model saved from one array, else one input per column.
        return not (self.content_type == "np" and len(self.inputs) == 1)

    def _conformed(self, inputs: Any, model: str) -> tuple[dict[str, Array], dict[str, Array]]:
        # On the server's hot path (every request): plain loops, no work when all fits.
        given = self._given(inputs, model)
        if len(given) != len(self.inputs) or any(s.name not in given for s in self.inputs):
            names = [spec.name for spec in self.inputs]
            missing = [name for name in names if name not in given]
            unknown = [name for name in given if name not in names]
            problems = [_listed(kind, found) for kind, found in
                        (("unknown", unknown), ("missing", missing)) if found]  # fmt: skip
            raise InvalidInput(f"{' and '.join(problems)}; {model} takes {', '.join(names)}")
        column = self.content_type == "pd"
        arrays = {spec.name: conform_array(spec, given[spec.name], column=column)
                  for spec in self.inputs}  # fmt: skip
        if len(arrays) == 1:
            return given, arrays
        rows = {name: len(array) for name, array in arrays.items() if array.ndim}
        if len(set(rows.values())) > 1:
            counts = ", ".join(f"{name!r} has {count}" for name, count in rows.items())
            raise InvalidInput(
                f"the inputs have different numbers of rows: {sorted(set(rows.values()))} "
                f"({counts})"
            )
        return given, arrays

    def _given(self, inputs: Any, model: str) -> dict[str, Array]:
        if type(inputs) is dict:  # decoded requests: names and arrays already
            return {
                str(k): v if type(v) is np.ndarray else np.asarray(v) for k, v in inputs.items()
            }
        if isinstance(inputs, Mapping) or (_is_dataframe(inputs) and self._by_columns()):
            return _columns(inputs)
        if isinstance(inputs, tuple) and len(self.inputs) > 1:
            if len(inputs) != len(self.inputs):
                raise InvalidInput(
                    f"{model} takes {len(self.inputs)} inputs "
                    f"({', '.join(s.name for s in self.inputs)}), got a tuple of {len(inputs)}"
                )
            return {
                spec.name: _array(value) for spec, value in zip(self.inputs, inputs, strict=True)
            }
        if len(self.inputs) != 1:
            raise InvalidInput(
                f"{model} takes {len(self.inputs)} named inputs "
                f"({', '.join(s.name for s in self.inputs)}): pass a DataFrame or a dict of "
                "arrays, not one array"
            )
        array = np.asarray(inputs.to_numpy()) if _is_dataframe(inputs) else _array(inputs)
        return {self.inputs[0].name: array.reshape(1) if array.ndim == 0 else array}

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
    if type(value) in _PLAIN:
        return False
    # pandas 3 names the class pandas.DataFrame, earlier ones pandas.core.frame.DataFrame
    return any(
        cls.__qualname__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"
        for cls in type(value).__mro__
    )


def conform_array(spec: TensorSpec, array: Array, *, column: bool = False) -> Array:
    """`array` in `spec`'s datatype and shape, or `InvalidInput` naming the input, what it is
    and what the model takes. The same array is returned when it fits as it is; a cast is made
    only where no value changes: a widening (FP32 to FP64, INT32 to INT64, INT8 to FP32, BOOL
    to numbers) always; a narrower type of the same kind (INT64 to INT32, FP64 to FP32), or
    integers into floats, when every value sent is exact there. Floats are never made integers,
    nor numbers booleans. A table `column` of shape [N, 1] is taken as [N]."""
    if column and array.ndim == 2 and array.shape[1] == 1 and len(spec.shape) == 1:
        array = array.reshape(len(array))
    array = _cast(spec, array)
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
    return array


def _cast(spec: TensorSpec, array: Array) -> Array:
    if spec.datatype == "BYTES":
        if array.dtype.kind in "OSUT":
            return array
        raise InvalidInput(
            f"input {spec.name!r} must be strings or bytes (BYTES), got {datatype_or_kind(array)}"
        )
    expected = numpy_dtype(spec.datatype)
    if array.dtype == expected:
        return array
    why = _loss(array, expected)
    if why is None:
        return array.astype(expected)
    raise InvalidInput(f"input {spec.name!r} must be {spec.datatype}, got {datatype_or_kind(array)}"
                       f"{why}")  # fmt: skip


def _loss(array: Array, expected: np.dtype[Any]) -> str | None:
    """None when casting `array` to `expected` changes no value, else why it would."""
    given = array.dtype.kind
    if given not in "biuf":  # strings, objects (missing values), complex, dates
        return ""
    if np.can_cast(array.dtype, expected, "safe"):
        return None
    if expected.kind == "b":
        return " (only booleans are taken as BOOL)"
    if given == "f":
        if expected.kind != "f":
            return " (floats are not made integers)"
        with np.errstate(over="ignore", invalid="ignore"):  # past the range: inf, not equal
            back = array.astype(expected).astype(array.dtype)
        if np.array_equal(back, array, equal_nan=True):
            return None  # float32 values that went through float64, say
        return (
            f" (some values are not exact in {datatype_of(expected)}; cast them first if that "
            "is meant)"
        )
    if array.size == 0:
        return None
    low, high = int(array.min()), int(array.max())
    if expected.kind in "iu":
        info = np.iinfo(expected)
        if info.min <= low and high <= info.max:
            return None
        return f" (values from {low} to {high} do not fit in {datatype_of(expected)})"
    exact = 2 ** (np.finfo(expected).nmant + 1)  # every integer up to this is a float there
    if -exact <= low and high <= exact:
        return None
    with np.errstate(over="ignore"):
        if all(_exact(value, expected) for value in array.ravel().tolist() if abs(value) > exact):
            return None
    return f" (some values are not exact in {datatype_of(expected)})"


def _exact(value: int, dtype: np.dtype[Any]) -> bool:
    # An integer exact in a float type is exact in a double too, so one rounding tells.
    rounded = dtype.type(float(value))
    return bool(np.isfinite(rounded)) and int(rounded) == value


def _listed(kind: str, names: list[str]) -> str:
    return f"{kind} input{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"


def _reframed(frame: Any, given: Mapping[str, Array], arrays: Mapping[str, Array]) -> Any:
    """The DataFrame's columns in the signature's order, the cast ones replaced (the others
    keep their pandas dtypes: categories stay categories)."""
    labels = {str(label): label for label in frame.columns}
    chosen = frame[[labels[name] for name in arrays]]
    cast = [name for name, array in arrays.items() if array is not given[name]]
    if cast:
        chosen = chosen.copy()
        for name in cast:
            chosen[labels[name]] = arrays[name]
    return chosen


def _flat(array: Array) -> Array:
    return array.reshape(len(array)) if array.ndim == 2 and array.shape[1] == 1 else array


def datatype_or_kind(array: np.ndarray[Any, Any]) -> str:
    """The OIP datatype of an array, or its NumPy dtype when it has none."""
    try:
        return datatype_of(array.dtype)
    except InvalidInput:
        return str(array.dtype)
