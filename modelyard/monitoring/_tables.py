"""Turn what `profile` accepts into typed columns that yield ready-to-summarise chunks.

Accepted: a pandas or Polars DataFrame, a pyarrow Table or RecordBatch, a dict of 1-D arrays, or
a 2-D NumPy array. pandas, pyarrow and Polars are recognised by module name, so profiling NumPy
data imports none of them. A numeric chunk is float64 with NaN for nulls and for mismatches (values
present but not numbers, counted apart); a categorical chunk is codes (-1 null) into labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require
from modelyard.errors import InvalidInput
from modelyard.monitoring import _arrow, _codes
from modelyard.monitoring._columns import Categories

FloatArray = npt.NDArray[np.float64]
NumericChunk = tuple[FloatArray, int]  # values (NaN: null or mismatch), mismatches

_NUMERIC_KINDS = "iuf"
_TIME_KINDS = "mM"
_CATEGORICAL_KINDS = "bOUS"


@dataclass(frozen=True)
class TableColumn:
    """One column of the input: its name, kind, and how to slice and convert its values."""

    name: str
    kind: str  # "numeric" or "categorical"
    values: Any  # anything with len() and slicing: ndarray, pandas Series, Arrow array
    convert: Callable[[Any], Any]

    def chunks(self, size: int) -> Iterator[Any]:
        """Consecutive converted slices of at most `size` rows, so memory stays flat."""
        if len(self.values) <= size:  # one chunk: slicing a pandas Series costs more than this
            yield self.convert(self.values)
            return
        for start in range(0, len(self.values), size):
            yield self.convert(self.values[start : start + size])


def table_columns(data: object, kinds: Mapping[str, str] | None = None) -> list[TableColumn]:
    """The columns of `data`, checked to be non-empty and of a supported dtype.

    `kinds` (a reference profile's column kinds) decides columns that could be read either way:
    a numeric column of the reference stays numeric, its strings counted as mismatches."""
    named = _named(data)
    if not named:
        raise InvalidInput("cannot profile data with no columns")
    kinds = kinds or {}
    columns = [_column(name, values, kinds.get(name)) for name, values in named.items()]
    lengths = {len(column.values) for column in columns}
    if len(lengths) > 1:
        raise InvalidInput(f"columns have different lengths: {sorted(lengths)}")
    if lengths == {0}:
        raise InvalidInput("cannot profile data with no rows")
    return columns


def _named(data: object) -> Mapping[str, Any]:
    if _is(data, "pandas", "DataFrame"):
        frame: Any = data
        return {str(name): frame[name] for name in frame.columns}
    if _is(data, "polars", "DataFrame"):
        polars_frame: Any = data  # each column goes to Arrow a chunk at a time (memory stays flat)
        return {str(name): polars_frame.get_column(name) for name in polars_frame.columns}
    if _is(data, "pyarrow", "Table", "RecordBatch"):
        table: Any = data
        return {str(name): table.column(name) for name in table.column_names}
    if isinstance(data, np.ndarray):
        return _array_columns(data)
    if isinstance(data, Mapping):
        return {str(name): values for name, values in data.items()}
    raise InvalidInput(
        f"cannot profile a {type(data).__name__}: pass a pandas or Polars DataFrame, a pyarrow "
        "Table, a dict of arrays or a 2-D NumPy array"
    )


def _is(data: object, module: str, *names: str) -> bool:
    # Checked by name so that profiling a dict of arrays imports none of these libraries.
    cls = type(data)
    return cls.__name__ in names and cls.__module__.split(".")[0] == module


def _array_columns(array: npt.NDArray[Any]) -> dict[str, Any]:
    if array.ndim != 2:
        raise InvalidInput(
            f"cannot profile a {array.ndim}-D array: pass a 2-D array (rows, columns)"
        )
    return {f"input-{index}": array[:, index] for index in range(array.shape[1])}


def _column(name: str, values: Any, expected: str | None) -> TableColumn:
    if _arrow.is_arrow(values):
        kind, convert = _arrow.reader(name, values, expected)
        return TableColumn(name, kind, values, convert)
    if _is(values, "polars", "Series"):
        kind, convert = _arrow.reader(name, values[:0].to_arrow(), expected)
        return TableColumn(name, kind, values, lambda chunk: convert(chunk.to_arrow()))
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        values = _list_array(values)
        dtype = values.dtype
    if getattr(values, "ndim", 1) != 1:
        raise InvalidInput(f"column {name!r} is not one-dimensional")
    kind = _kind(name, dtype)
    if expected is not None and expected != kind:
        kind = expected
    if kind == "categorical":
        return TableColumn(name, kind, values, _categorical_reader(dtype))
    return TableColumn(name, kind, values, _numeric_reader(dtype))


def _list_array(values: Any) -> npt.NDArray[Any]:
    array = np.asarray(values)
    if array.dtype.kind in "US" and any(not isinstance(value, str) for value in values):
        return np.array(values, dtype=object)  # keep numbers among strings as numbers
    return array


def _kind(name: str, dtype: Any) -> str:
    text = str(dtype)
    if text in ("category", "str", "string", "boolean") or text.startswith("string["):
        return "categorical"
    kind = getattr(dtype, "kind", "")
    if text.startswith("datetime64[") or kind in _TIME_KINDS or kind in _NUMERIC_KINDS:
        return "numeric"
    if kind in _CATEGORICAL_KINDS:
        return "categorical"
    raise InvalidInput(
        f"column {name!r} has dtype {dtype}, which is neither numeric nor categorical"
    )


def _numeric_reader(dtype: Any) -> Callable[[Any], NumericChunk]:
    text = str(dtype)
    if text.startswith("datetime64[") and "," in text:  # tz-aware pandas: UTC instants
        return lambda chunk: (_seconds(chunk.dt.tz_convert("UTC").dt.tz_localize(None)), 0)
    kind = getattr(dtype, "kind", "")
    if kind in _TIME_KINDS:
        return lambda chunk: (_seconds(chunk), 0)
    if kind == "f" and not text[0].isupper():
        return lambda chunk: (np.asarray(chunk, dtype=np.float64), 0)
    if kind in "iu" and not text[0].isupper():
        return lambda chunk: (np.asarray(chunk).astype(np.float64), 0)
    if kind in "iuf":  # pandas nullable Int64/Float64: NA is null
        return lambda chunk: (chunk.to_numpy(dtype=np.float64, na_value=np.nan), 0)
    return _mixed_numbers


def _seconds(chunk: Any) -> FloatArray:
    """Seconds since the epoch (or in a duration) as floats, NaT as NaN."""
    times = np.asarray(chunk)
    unit = "M8[us]" if times.dtype.kind == "M" else "m8[us]"
    ticks = times.astype(unit).view(np.int64).astype(np.float64) / 1e6
    ticks[np.isnat(times)] = np.nan
    return ticks


def _mixed_numbers(chunk: Any) -> NumericChunk:
    """Numbers among other values: each non-null value that is not a number is a mismatch."""
    objects = np.asarray(chunk, dtype=object)
    pandas = require("pandas", extra="monitor")
    missing = np.asarray(pandas.isna(objects), dtype=bool)
    number = np.fromiter(map(_is_number, objects), dtype=bool, count=objects.size)
    values = np.full(objects.size, np.nan)
    values[number] = objects[number].astype(np.float64)
    return values, int(np.count_nonzero(~number & ~missing))


def _is_number(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | np.integer | np.floating)


def _categorical_reader(dtype: Any) -> Callable[[Any], Categories]:
    pandas = require("pandas", extra="monitor")
    if str(dtype) == "category":
        return lambda chunk: _labelled(chunk.cat.codes.to_numpy(), chunk.cat.categories)
    kind = getattr(dtype, "kind", "")
    if isinstance(dtype, np.dtype) and kind in "US":
        return lambda chunk: Categories.from_codes(*_codes.text_codes(np.asarray(chunk)))
    if isinstance(dtype, np.dtype) and kind == "b":
        return lambda chunk: Categories.from_codes(*_codes.boolean_codes(np.asarray(chunk)))
    if isinstance(dtype, np.dtype) and kind == "O":
        return lambda chunk: _objects(pandas.Series(chunk, copy=False))

    def factorize(chunk: Any) -> Categories:
        codes, uniques = pandas.factorize(chunk, use_na_sentinel=True)
        return _labelled(codes, uniques)

    return factorize


def _labelled(codes: Any, uniques: Any) -> Categories:
    labels = [str(value) for value in uniques]
    return Categories.from_codes(np.asarray(codes, dtype=np.intp), labels)


def _objects(series: Any) -> Categories:
    """Python objects: strings by their objects' identity when rows share them, else counted
    by pandas' hash table (faster there than factorizing them)."""
    objects = series.to_numpy()
    shared = _codes.shared_text_codes(objects)
    if shared is not None:
        return Categories.from_codes(*shared)
    counted = series.value_counts(dropna=True, sort=False)
    counts = counted.to_numpy().astype(np.int64)

    def pick(positions: npt.NDArray[np.intp]) -> npt.NDArray[np.object_]:
        valid = objects if counts.sum() == objects.size else objects[series.notna().to_numpy()]
        return np.array([str(value) for value in valid[positions]], dtype=object)

    return Categories(len(series), [str(key) for key in counted.index], counts, pick)
