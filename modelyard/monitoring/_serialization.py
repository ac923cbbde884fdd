"""The byte form of a profile: JSON, with NumPy arrays as base64 of their little-endian bytes.

No pickle, so a stored profile cannot run code when it is read back.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInput
from modelyard.monitoring._columns import CategoricalColumn, Column, Histogram, NumericColumn
from modelyard.monitoring._reservoir import Reservoir
from modelyard.monitoring._sketch import QuantileSketch

FORMAT = "modelyard.profile/1"


def dump(columns: Mapping[str, Column]) -> bytes:
    """`columns` as JSON bytes."""
    body = {"format": FORMAT, "columns": [_column(name, col) for name, col in columns.items()]}
    return json.dumps(body, separators=(",", ":"), allow_nan=True).encode()


def load(data: bytes) -> dict[str, Column]:
    """The columns that `dump` wrote."""
    try:
        body = json.loads(data)
        if body.get("format") != FORMAT:
            raise InvalidInput(f"not a modelyard profile (format {body.get('format')!r})")
        return {entry["name"]: _restore(entry) for entry in body["columns"]}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput(f"cannot read a profile from these bytes: {error}") from error


def _column(name: str, column: Column) -> dict[str, Any]:
    common = {
        "name": name,
        "kind": column.kind,
        "count": column.count,
        "nulls": column.nulls,
        "mismatches": column.mismatches,
    }
    if isinstance(column, CategoricalColumn):
        return {
            **common,
            "frequencies": dict(column.frequencies),
            "other": column.other,
            "cap": column.cap,
            "sample": [str(value) for value in column.reservoir.values],
            **_reservoir_meta(column.reservoir),
        }
    sketch = column.sketch
    return {
        **common,
        "minimum": column.minimum,
        "maximum": column.maximum,
        "mean": column.mean,
        "m2": column.m2,
        "histogram": [column.histogram.low, column.histogram.high, _array(column.histogram.counts)],
        "sketch": {
            "capacity": sketch.capacity,
            "count": sketch.count,
            "error": sketch.error,
            "levels": [_array(level) for level in sketch.levels],
        },
        "sample": _array(column.reservoir.values),
        **_reservoir_meta(column.reservoir),
    }


def _restore(entry: dict[str, Any]) -> Column:
    reservoir_kind = object if entry["kind"] == "categorical" else np.float64
    sample = entry["sample"]
    values = np.array(sample, dtype=object) if reservoir_kind is object else _floats(sample)
    reservoir = Reservoir(values, seen=entry["seen"], capacity=entry["capacity"])
    if entry["kind"] == "categorical":
        return CategoricalColumn(
            count=entry["count"],
            nulls=entry["nulls"],
            frequencies={str(key): int(value) for key, value in entry["frequencies"].items()},
            other=entry["other"],
            reservoir=reservoir,
            cap=entry["cap"],
            mismatches=int(entry.get("mismatches", 0)),
        )
    low, high, counts = entry["histogram"]
    sketch = entry["sketch"]
    return NumericColumn(
        count=entry["count"],
        nulls=entry["nulls"],
        minimum=entry["minimum"],
        maximum=entry["maximum"],
        mean=entry["mean"],
        m2=entry["m2"],
        histogram=Histogram(low, high, np.frombuffer(base64.b64decode(counts), "<i8").copy()),
        sketch=QuantileSketch(
            capacity=sketch["capacity"],
            count=sketch["count"],
            error=sketch["error"],
            levels=[_floats(level) for level in sketch["levels"]],
        ),
        reservoir=reservoir,
        mismatches=int(entry.get("mismatches", 0)),
    )


def _reservoir_meta(reservoir: Reservoir) -> dict[str, int]:
    return {"seen": reservoir.seen, "capacity": reservoir.capacity}


def _array(values: npt.NDArray[Any]) -> str:
    dtype = "<i8" if values.dtype.kind in "iu" else "<f8"
    return base64.b64encode(values.astype(dtype, copy=False).tobytes()).decode("ascii")


def _floats(encoded: str) -> npt.NDArray[np.float64]:
    return np.frombuffer(base64.b64decode(encoded), "<f8").copy()
