"""Every input type profiles to the same statistics as its NumPy equivalent; mismatches counted."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from modelyard.errors import InvalidInput
from modelyard.monitoring import (
    CategoricalColumn,
    Histogram,
    NumericColumn,
    Profile,
    detect_drift,
    profile,
)
from modelyard.monitoring._sketch import order_statistics
from modelyard.monitoring._windows import window_columns

ROWS = 70_000  # more than one chunk, so chunk merging is compared too
RANKS = np.linspace(0, 1, 21)


def numpy_table(rng: np.random.Generator) -> dict[str, Any]:
    levels = np.array([f"level-{i}" for i in range(12)])
    floats = rng.normal(3, 2, ROWS)
    floats[::97] = np.nan
    return {
        "x": floats,
        "n": rng.integers(0, 1000, ROWS).astype(np.float64),
        "c": rng.choice(levels, ROWS),
        "b": rng.random(ROWS) < 0.3,
    }


def same(left: Profile, right: Profile) -> None:
    assert list(left.columns) == list(right.columns)
    for name, mine in left.columns.items():
        theirs = right.columns[name]
        assert type(mine) is type(theirs), name
        assert (mine.count, mine.nulls, mine.mismatches) == (
            theirs.count,
            theirs.nulls,
            theirs.mismatches,
        ), name
        if isinstance(mine, NumericColumn):
            assert isinstance(theirs, NumericColumn)
            assert (mine.minimum, mine.maximum) == (theirs.minimum, theirs.maximum)
            assert mine.mean == pytest.approx(theirs.mean, rel=1e-12)
            assert mine.m2 == pytest.approx(theirs.m2, rel=1e-9)
            np.testing.assert_array_equal(mine.histogram.counts, theirs.histogram.counts)
            np.testing.assert_array_equal(
                mine.sketch.quantiles(RANKS), theirs.sketch.quantiles(RANKS)
            )
            np.testing.assert_array_equal(mine.reservoir.values, theirs.reservoir.values)
        else:
            assert isinstance(mine, CategoricalColumn) and isinstance(theirs, CategoricalColumn)
            assert dict(mine.frequencies) == dict(theirs.frequencies)
            assert mine.other == theirs.other
            assert sorted(mine.reservoir.values) == sorted(theirs.reservoir.values)


def _pandas(table: dict[str, Any], strings: str) -> pd.DataFrame:
    frame = pd.DataFrame(table)
    frame["c"] = frame["c"].astype(strings)
    return frame


CONVERSIONS = {
    "2-D array": None,
    "pandas object": lambda t: _pandas(t, "object"),
    "pandas str": lambda t: _pandas(t, "str"),
    "pandas category": lambda t: _pandas(t, "category"),
    "pandas string[pyarrow]": lambda t: _pandas(t, "string[pyarrow]"),
    "arrow table": lambda t: pa.table(t),
    "arrow record batch": lambda t: pa.record_batch(t),
    "polars": lambda t: pytest.importorskip("polars").DataFrame(t),
}


@pytest.mark.parametrize("kind", list(CONVERSIONS))
def test_every_input_type_gives_the_numpy_statistics(kind: str) -> None:
    rng = np.random.default_rng(5)
    table = numpy_table(rng)
    if kind == "2-D array":
        numbers = np.column_stack([table["x"], table["n"]])
        expected = profile({"input-0": table["x"], "input-1": table["n"]}, seed=3)
        same(profile(numbers, seed=3), expected)
        return
    expected = profile(table, seed=3)
    converted = CONVERSIONS[kind](table)  # type: ignore[misc]
    same(profile(converted, seed=3), expected)
    window = profile(converted, reference=expected, seed=4)
    same(window, profile(table, reference=expected, seed=4))


def test_nullable_pandas_dtypes_count_na_as_null() -> None:
    frame = pd.DataFrame(
        {
            "i": pd.array([1, None, 3, 4], dtype="Int64"),
            "f": pd.array([0.5, 1.5, None, 2.0], dtype="Float64"),
            "b": pd.array([True, None, False, True], dtype="boolean"),
        }
    )
    expected = profile(
        {
            "i": np.array([1, np.nan, 3, 4]),
            "f": np.array([0.5, 1.5, np.nan, 2.0]),
            "b": np.array([True, None, False, True], dtype=object),
        },
        seed=1,
    )
    same(profile(frame, seed=1), expected)
    assert dict(expected.columns["b"].frequencies) == {"True": 2, "False": 1}  # type: ignore[union-attr]


def test_datetimes_are_seconds_since_the_epoch_in_every_form() -> None:
    stamps = np.array(["2024-01-01T00:00", "NaT", "2024-01-02T12:00"], dtype="datetime64[ns]")
    seconds = np.array([1704067200.0, np.nan, 1704196800.0])
    expected = profile({"t": seconds}, seed=0)
    zoned = pd.Series(stamps).dt.tz_localize("UTC").dt.tz_convert("Europe/Paris")
    forms: list[object] = [
        {"t": stamps},
        pd.DataFrame({"t": stamps}),
        pd.DataFrame({"t": zoned}),
        pa.table({"t": pa.array(stamps)}),
        pa.table({"t": pa.array(zoned)}),
    ]
    for form in forms:
        same(profile(form, seed=0), expected)
    column = expected.columns["t"]
    assert isinstance(column, NumericColumn) and column.nulls == 1


def test_strings_in_a_numeric_column_are_mismatches_not_nulls() -> None:
    reference = profile({"x": np.arange(100.0)}, seed=0)
    mixed = np.array([1.0, "oops", None, 3.0, True, np.nan], dtype=object)
    for data in ({"x": mixed}, pd.DataFrame({"x": pd.Series(mixed, dtype=object)})):
        column = profile(data, reference=reference).columns["x"]
        assert isinstance(column, NumericColumn)
        assert (column.count, column.nulls, column.mismatches) == (6, 2, 2)
        assert (column.minimum, column.maximum, column.valid - column.mismatches) == (1.0, 3.0, 2)
    back = Profile.from_bytes(profile({"x": mixed}, reference=reference).to_bytes())
    assert back.columns["x"].mismatches == 2
    merged = back.merge(profile({"x": mixed}, reference=reference))
    assert merged.columns["x"].mismatches == 4


def test_without_a_reference_an_object_column_stays_categorical() -> None:
    mixed = np.array([1.0, "a", 2.0], dtype=object)
    assert profile({"x": mixed}).columns["x"].kind == "categorical"


def test_numbers_where_the_reference_has_categories_are_categories() -> None:
    reference = profile({"c": np.array(["1", "2", "2"])})
    column = profile({"c": np.array([1, 2, 2, 2])}, reference=reference).columns["c"]
    assert isinstance(column, CategoricalColumn)
    assert dict(column.frequencies) == {"1": 1, "2": 3}


def test_old_profiles_without_mismatches_load_as_zero() -> None:
    text = profile({"x": np.arange(5.0), "c": np.array(list("abcab"))}).to_bytes()
    old = text.replace(b'"mismatches":0,', b"")
    assert b"mismatches" not in old
    loaded = Profile.from_bytes(old)
    assert [column.mismatches for column in loaded.columns.values()] == [0, 0]


def test_a_string_in_a_logged_numeric_input_does_not_stop_drift() -> None:
    rng = np.random.default_rng(0)
    reference = profile({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    records = [
        {
            "inputs": {"x": rng.normal(size=5).tolist(), "c": ["a", "b", "a", "b", "a"]},
            "outputs": {},
        }
        for _ in range(20)
    ]
    records.append({"inputs": {"x": [0.1, "not a number"], "c": ["a", "b"]}, "outputs": {}})
    inputs, _, requests = window_columns(records)
    assert requests == 21 and inputs["x"].dtype == object and inputs["c"].dtype.kind == "U"
    window = profile(inputs, reference=reference)
    assert window.columns["x"].mismatches == 1
    report = detect_drift(reference, window)
    assert [column.column for column in report.columns] == ["x", "c"]


def test_unsupported_dtypes_are_named() -> None:
    with pytest.raises(InvalidInput, match="'z' has dtype complex128"):
        profile({"z": np.array([1j, 2j])})
    with pytest.raises(InvalidInput, match="'l' has Arrow type list"):
        profile(pa.table({"l": pa.array([[1], [2]])}))
    with pytest.raises(InvalidInput, match="cannot profile a set"):
        profile({1, 2})


def test_order_statistics_equal_a_full_sort() -> None:
    rng = np.random.default_rng(1)
    samples = [
        rng.normal(size=50_000),
        rng.lognormal(0, 3, 50_000),
        np.r_[rng.normal(size=30_000), [1e308, -1e308, np.inf, -np.inf] * 10],
        rng.integers(0, 4, 40_000).astype(np.float64),
        np.r_[rng.normal(size=20_000), np.full(20_000, 3.0)],
    ]
    for values in samples:
        ranks = np.arange(int(rng.integers(64)), values.size, 64)
        np.testing.assert_array_equal(order_statistics(values, ranks), np.sort(values)[ranks])


def test_profiling_numpy_data_imports_neither_polars_nor_pyarrow() -> None:
    code = (
        "import sys, numpy as np\n"
        "from modelyard.monitoring import profile\n"
        "profile({'x': np.arange(10.0), 'when': np.arange(10).astype('datetime64[s]')})\n"
        "profile({'c': np.array(list('abababab'))})\n"
        "assert 'polars' not in sys.modules, 'polars'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_damaged_values_in_an_object_column_are_counted_not_raised() -> None:
    class Hostile:
        def __float__(self) -> float:
            raise RuntimeError("never called")

        def __str__(self) -> str:
            return "hostile"

    reference = profile({"x": np.arange(10.0), "c": np.array(list("abababab") + ["c", "c"])})
    values = np.array([1.0, Hostile(), float("inf"), b"\xff", {"a": 1}] * 2, dtype=object)
    window = profile({"x": values, "c": values}, reference=reference)
    numeric, categories = window.columns["x"], window.columns["c"]
    assert isinstance(numeric, NumericColumn) and numeric.mismatches == 6
    assert isinstance(categories, CategoricalColumn) and categories.frequencies["hostile"] == 2


def test_histogram_counts_as_numpy_histogram_does() -> None:
    rng = np.random.default_rng(2)
    values = np.r_[rng.normal(0.5, 2, 5_000), [-2.0, 3.0, np.inf, -np.inf, 1e308, -1e308]]
    counts = Histogram(-2.0, 3.0, np.zeros(34, np.int64)).add(values).counts
    inner, _ = np.histogram(values[np.isfinite(values)], bins=32, range=(-2.0, 3.0))
    np.testing.assert_array_equal(counts[1:-1], inner)
    assert (counts[0], counts[-1]) == (np.sum(values < -2.0), np.sum(values > 3.0))
