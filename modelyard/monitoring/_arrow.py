"""Read Arrow columns (of a pyarrow Table or RecordBatch, or a Polars frame) without pandas.

Only reached when given Arrow data, so pyarrow is imported here and nowhere else in profiling.
Strings and dictionaries are counted through Arrow's own dictionary encoding: no Python string
is made per row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require
from modelyard.errors import InvalidInput
from modelyard.monitoring._columns import Categories

FloatArray = npt.NDArray[np.float64]


def is_arrow(values: object) -> bool:
    """Whether `values` is a pyarrow Array or ChunkedArray (checked without importing pyarrow)."""
    cls = type(values)
    return cls.__module__.split(".")[0] == "pyarrow" and hasattr(values, "type")


def reader(name: str, values: Any, expected: str | None) -> tuple[str, Callable[[Any], Any]]:
    """The kind of an Arrow column and how to convert a slice of it into a chunk."""
    pa = require("pyarrow", extra="pandas")  # only when given Arrow data

    kind_of = values.type
    if pa.types.is_dictionary(kind_of):
        kind_of = kind_of.value_type
    convert: Callable[[Any], Any]
    if pa.types.is_temporal(kind_of):
        kind, convert = "numeric", _seconds
    elif pa.types.is_integer(kind_of) or pa.types.is_floating(kind_of):
        kind, convert = "numeric", _floats
    elif pa.types.is_boolean(kind_of) or _is_text(pa, kind_of):
        kind, convert = "categorical", _categories
    else:
        raise InvalidInput(
            f"column {name!r} has Arrow type {values.type}, which is neither numeric nor "
            "categorical"
        )
    if expected == "categorical" and kind == "numeric":
        return expected, _categories
    if expected == "numeric" and kind == "categorical":
        return expected, _mismatches
    return kind, convert


def _is_text(pa: Any, kind: Any) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind)) or (
        bool(getattr(pa.types, "is_string_view", lambda _: False)(kind))
    )


def _floats(chunk: Any) -> tuple[FloatArray, int]:
    pa = require("pyarrow", extra="pandas")

    floats = chunk.cast(pa.float64()) if not pa.types.is_float64(chunk.type) else chunk
    return np.asarray(floats.to_numpy(zero_copy_only=False), dtype=np.float64), 0


def _seconds(chunk: Any) -> tuple[FloatArray, int]:
    pa = require("pyarrow", extra="pandas")

    kind = chunk.type
    if pa.types.is_duration(kind):
        ticks = chunk.cast(pa.duration("us")).cast(pa.int64())
    else:
        zone = getattr(kind, "tz", None)
        ticks = chunk.cast(pa.timestamp("us", tz=zone)).cast(pa.int64())
    micros = ticks.cast(pa.float64()).to_numpy(zero_copy_only=False)
    return np.asarray(micros, dtype=np.float64) / 1e6, 0


def _mismatches(chunk: Any) -> tuple[FloatArray, int]:
    """A text or boolean column where numbers were expected: every value present mismatches."""
    return np.full(len(chunk), np.nan), len(chunk) - chunk.null_count


def _categories(chunk: Any) -> Categories:
    pa = require("pyarrow", extra="pandas")

    array = chunk.combine_chunks() if isinstance(chunk, pa.ChunkedArray) else chunk
    if not pa.types.is_dictionary(array.type):
        array = array.dictionary_encode()
    codes = array.indices.cast(pa.int64()).fill_null(-1).to_numpy(zero_copy_only=False)
    labels = [str(value) for value in array.dictionary.to_pylist()]
    return Categories.from_codes(np.asarray(codes, dtype=np.intp), labels)
