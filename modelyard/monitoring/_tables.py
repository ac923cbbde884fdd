"""Turn what `profile` accepts (a DataFrame, a dict of arrays, a 2-D array) into typed columns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require
from modelyard.errors import InvalidInput

_NUMERIC_KINDS = "iuf"
_CATEGORICAL_KINDS = "bOUS"


@dataclass(frozen=True)
class TableColumn:
    """One column of the input: its name, kind, and values (an ndarray, or a pandas Series)."""

    name: str
    kind: str  # "numeric" or "categorical"
    values: Any

    def chunks(self, size: int) -> Iterator[Any]:
        """Consecutive slices of at most `size` rows, so memory stays flat on large tables."""
        for start in range(0, len(self.values), size):
            yield self.values[start : start + size]


def table_columns(data: object) -> list[TableColumn]:
    """The columns of `data`, checked to be non-empty and of a supported dtype."""
    if _is_dataframe(data):
        frame: Any = data
        named: Mapping[str, Any] = {str(name): frame[name] for name in frame.columns}
    elif isinstance(data, np.ndarray):
        named = _array_columns(data)
    elif isinstance(data, Mapping):
        named = {str(name): values for name, values in data.items()}
    else:
        raise InvalidInput(
            f"cannot profile a {type(data).__name__}: pass a pandas DataFrame, a dict of arrays "
            "or a 2-D NumPy array"
        )
    if not named:
        raise InvalidInput("cannot profile data with no columns")
    columns = [_column(name, values) for name, values in named.items()]
    lengths = {len(column.values) for column in columns}
    if len(lengths) > 1:
        raise InvalidInput(f"columns have different lengths: {sorted(lengths)}")
    if lengths == {0}:
        raise InvalidInput("cannot profile data with no rows")
    return columns


def _is_dataframe(data: object) -> bool:
    # Checked by name so that profiling a dict of arrays does not import pandas.
    cls = type(data)
    return cls.__name__ == "DataFrame" and cls.__module__.split(".")[0] == "pandas"


def _array_columns(array: npt.NDArray[Any]) -> dict[str, Any]:
    if array.ndim != 2:
        raise InvalidInput(
            f"cannot profile a {array.ndim}-D array: pass a 2-D array (rows, columns)"
        )
    return {f"input-{index}": array[:, index] for index in range(array.shape[1])}


def _column(name: str, values: Any) -> TableColumn:
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        values = np.asarray(values)
        dtype = values.dtype
    if getattr(values, "ndim", 1) != 1:
        raise InvalidInput(f"column {name!r} is not one-dimensional")
    if str(dtype) == "category" or dtype.kind in _CATEGORICAL_KINDS:
        pandas = require("pandas", extra="monitor")
        return TableColumn(name, "categorical", pandas.Series(values, copy=False))
    if dtype.kind in _NUMERIC_KINDS:
        return TableColumn(name, "numeric", _numeric_array(values))
    raise InvalidInput(
        f"column {name!r} has dtype {dtype}, which is neither numeric nor categorical"
    )


def _numeric_array(values: Any) -> npt.NDArray[Any]:
    if isinstance(values, np.ndarray):
        return values
    # pandas nullable dtypes (Int64, Float64) turn NA into NaN; plain ones come back as views.
    if str(values.dtype)[0].isupper():
        return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan))
    return np.asarray(values.to_numpy())
