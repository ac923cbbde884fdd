"""The data of `bench/drift.py`: its own table, issue 22's table with planted shifts, and that
table in every input type a user passes. Imported as a sibling module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

NUMERIC, CATEGORICAL = 20, 5
LEVELS = np.array([f"level-{i}" for i in range(12)])
ISSUE_LEVELS = (5, 10, 25, 50, 100)
NUMERIC_SHIFTS = {
    0: (0.5, 1.0),
    1: (0.0, 1.1),
    2: (0.1, 1.0),
    3: (0.0, 1.05),
    4: (0.05, 1.0),
    5: (0.0, 1.5),
}
"""Planted in the `issue` window: column index -> (mean shift in sds, spread factor)."""
UNSEEN_SHARE = 0.02
"""Share of `cat_3`'s window rows given a level the reference never saw."""


def frame(rows: int, *, shifted: bool, seed: int) -> pd.DataFrame:
    """20 numeric and 5 categorical columns; when shifted, every other column of each kind moves."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(NUMERIC):
        shift = 0.25 if shifted and i % 2 == 0 else 0.0
        columns[f"num_{i}"] = rng.normal(shift, 1.0 + i / 10, rows)
    base = np.linspace(2.0, 1.0, LEVELS.size)
    for i in range(CATEGORICAL):
        weights = base[::-1] if shifted and i % 2 == 0 else base
        columns[f"cat_{i}"] = rng.choice(LEVELS, rows, p=weights / weights.sum())
    return pd.DataFrame(columns)


def frame_truth() -> list[str]:
    """The columns `frame(shifted=True)` moves."""
    return [
        f"{kind}_{i}"
        for kind, n in (("num", NUMERIC), ("cat", CATEGORICAL))
        for i in range(0, n, 2)
    ]


def issue_frame(rows: int, *, shifted: bool, seed: int) -> pd.DataFrame:
    """Issue 22's table: 20 float64 columns (normal, log-normal, uniform, exponential in turn)
    and 5 `object` string columns of 5 to 100 levels (shares falling as 1/rank). When shifted:
    `NUMERIC_SHIFTS` move 6 numeric columns; `cat_0`'s shares reverse, `cat_2`'s top level gains
    about 4 points (from 26%), `cat_3` gains an unseen level (`UNSEEN_SHARE` of its rows); the
    other 16 columns stay as they were."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for i in range(NUMERIC):
        values = _shape(i, rows, rng)
        shift, spread = NUMERIC_SHIFTS.get(i, (0.0, 1.0)) if shifted else (0.0, 1.0)
        if shift or spread != 1.0:
            mean, sd = values.mean(), values.std()
            values = mean + (values - mean) * spread + shift * sd
        columns[f"num_{i}"] = values
    for i, count in enumerate(ISSUE_LEVELS):
        levels = np.array([f"c{i}-level-{k}" for k in range(count)], dtype=object)
        weights = 1.0 / np.arange(1, count + 1)
        weights /= weights.sum()
        if shifted and i == 0:
            weights = weights[::-1]
        if shifted and i == 2:
            weights = (weights + np.eye(count)[0] * 0.05) / 1.05
        values = rng.choice(levels, rows, p=weights)
        if shifted and i == 3:
            values[rng.random(rows) < UNSEEN_SHARE] = f"c{i}-unseen"
        columns[f"cat_{i}"] = pd.Series(values, dtype=object)
    return pd.DataFrame(columns)


def issue_truth() -> list[str]:
    """The columns `issue_frame(shifted=True)` moves."""
    return [f"num_{i}" for i in sorted(NUMERIC_SHIFTS)] + ["cat_0", "cat_2", "cat_3"]


def _shape(i: int, rows: int, rng: np.random.Generator) -> Any:
    shape = i % 4
    if shape == 0:
        return rng.normal(i, 1.0 + i / 10, rows)
    if shape == 1:
        return rng.lognormal(0.0, 0.5, rows) * (1 + i)
    if shape == 2:
        return rng.uniform(0.0, 10.0 + i, rows)
    return rng.exponential(1.0 + i / 4, rows)


def input_tables(rows: int, *, shifted: bool, seed: int) -> Iterator[tuple[str, Any]]:
    """The `issue` table in every input type a user passes, one at a time (name, table): the 5
    non-float columns take the type under test, or the whole table does."""
    base = issue_frame(rows, shifted=shifted, seed=seed)
    floats = base.iloc[:, :NUMERIC]
    cats = [f"cat_{i}" for i in range(CATEGORICAL)]
    codes = {
        name: base[name].astype("category").cat.codes.to_numpy().astype(np.int64) for name in cats
    }
    missing = np.random.default_rng(seed + 100).random((rows, CATEGORICAL)) < 0.01
    yield "NumPy 2-D float64", np.column_stack([floats.to_numpy(), *codes.values()])
    yield (
        "dict of NumPy (U strings)",
        {
            **{name: floats[name].to_numpy() for name in floats},
            **{name: base[name].to_numpy().astype(str) for name in cats},
        },
    )
    yield "pandas object", base
    for dtype in ("category", "string[pyarrow]", "str"):
        yield f"pandas {dtype}", base.astype(dict.fromkeys(cats, dtype))
    nullable = {name: pd.array(codes[name], dtype="Int64") for name in cats}
    for j, name in enumerate(cats):
        nullable[name][missing[:, j]] = pd.NA
    yield "pandas Int64 (nullable)", floats.assign(**nullable)
    booleans = {name: pd.array(codes[name] % 2 == 0, dtype="boolean") for name in cats}
    for j, name in enumerate(cats):
        booleans[name][missing[:, j]] = pd.NA
    yield "pandas boolean", floats.assign(**booleans)
    start = np.datetime64("2026-01-01T00:00:00", "ns")
    stamps = {
        name: start + (codes[name] * 3_600_000_000_000).astype("timedelta64[ns]") for name in cats
    }
    yield "pandas datetime64[ns]", floats.assign(**stamps)
    try:
        import pyarrow as pa
    except ImportError as error:
        yield "pyarrow Table", error
    else:
        yield "pyarrow Table", pa.Table.from_pandas(base, preserve_index=False)
    try:
        import polars as pl
    except ImportError as error:
        yield "polars DataFrame", error
    else:
        yield "polars DataFrame", pl.from_pandas(base)
