"""Profiles: what they hold, merging windows, and the byte form."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelyard.errors import InvalidInput
from modelyard.monitoring import CategoricalColumn, NumericColumn, Profile, profile
from tests.monitoring.conftest import table


def numeric(prof: Profile, name: str) -> NumericColumn:
    column = prof.columns[name]
    assert isinstance(column, NumericColumn)
    return column


def categorical(prof: Profile, name: str) -> CategoricalColumn:
    column = prof.columns[name]
    assert isinstance(column, CategoricalColumn)
    return column


def test_numeric_summary_matches_numpy(rng: np.random.Generator) -> None:
    values = rng.normal(3, 2, 200_000)
    values[::100] = np.nan
    column = numeric(profile({"x": values}, seed=1), "x")
    valid = values[~np.isnan(values)]
    assert (column.count, column.nulls) == (200_000, 2_000)
    assert (column.minimum, column.maximum) == (valid.min(), valid.max())
    assert column.mean == pytest.approx(valid.mean(), rel=1e-12)
    assert column.variance == pytest.approx(valid.var(ddof=1), rel=1e-10)
    assert column.histogram.counts.sum() == valid.size
    assert column.reservoir.values.size == 4096 and column.reservoir.seen == valid.size
    median = column.sketch.quantiles(np.array([0.5]))[0]
    assert abs(np.mean(valid <= median) - 0.5) <= column.sketch.rank_error


def test_categorical_summary_counts_exactly_then_folds_into_other() -> None:
    values = np.array(["a"] * 50 + ["b"] * 30 + [None] * 5 + [f"rare{i}" for i in range(15)])
    column = categorical(profile({"c": values}, category_cap=3), "c")
    assert (column.count, column.nulls) == (100, 5)
    assert column.frequencies["a"] == 50 and column.frequencies["b"] == 30
    assert sum(column.frequencies.values()) + column.other == 95
    assert len(column.frequencies) == 3


def test_array_columns_are_named_by_position_and_kinds_inferred() -> None:
    prof = profile(np.arange(12.0).reshape(4, 3))
    assert list(prof.columns) == ["input-0", "input-1", "input-2"]
    mixed = profile(
        pd.DataFrame(
            {
                "flag": [True, False, True],
                "n": pd.array([1, None, 3], dtype="Int64"),
                "cat": pd.Categorical(["x", "y", "x"]),
            }
        )
    )
    assert [column.kind for column in mixed.columns.values()] == [
        "categorical",
        "numeric",
        "categorical",
    ]
    assert mixed.columns["n"].nulls == 1
    assert categorical(mixed, "cat").frequencies == {"x": 2, "y": 1}


def test_round_trip_through_bytes(rng: np.random.Generator) -> None:
    prof = profile(table(rng, 10_000), seed=2)
    back = Profile.from_bytes(prof.to_bytes())
    assert b"pickle" not in prof.to_bytes()
    assert list(back.columns) == list(prof.columns)
    age, restored = numeric(prof, "age"), numeric(back, "age")
    assert (restored.count, restored.mean, restored.m2) == (age.count, age.mean, age.m2)
    np.testing.assert_array_equal(restored.histogram.counts, age.histogram.counts)
    np.testing.assert_array_equal(restored.reservoir.values, age.reservoir.values)
    ranks = np.linspace(0, 1, 11)
    np.testing.assert_array_equal(restored.sketch.quantiles(ranks), age.sketch.quantiles(ranks))
    assert categorical(back, "colour").frequencies == categorical(prof, "colour").frequencies


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "no columns"),
        ({"x": np.array([])}, "no rows"),
        (pd.DataFrame({"x": []}, dtype=float), "no rows"),
        (np.zeros(3), "1-D array"),
        ([1, 2, 3], "cannot profile a list"),
        ({"x": [1, 2], "y": [1]}, "different lengths"),
        ({"z": np.array([1j])}, "'z' has dtype"),
    ],
)
def test_bad_input_is_named(data: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        profile(data)


def test_unreadable_bytes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="cannot read a profile"):
        Profile.from_bytes(b"not json")
    with pytest.raises(InvalidInput, match="not a modelyard profile"):
        Profile.from_bytes(b'{"format": "other"}')


def test_merging_different_columns_or_edges_is_refused(rng: np.random.Generator) -> None:
    with pytest.raises(InvalidInput, match="different columns"):
        profile({"a": [1.0]}).merge(profile({"b": [1.0]}))
    with pytest.raises(InvalidInput, match="numeric in one profile and categorical"):
        profile({"a": [1.0]}).merge(profile({"a": ["x"]}))
    with pytest.raises(InvalidInput, match="reference=<the reference profile>"):
        profile({"a": [1.0, 2.0]}).merge(profile({"a": [5.0, 9.0]}))


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 3_000), min_size=1, max_size=5),
    seed=st.integers(0, 2**32 - 1),
    null_share=st.sampled_from([0.0, 0.1]),
)
def test_merged_windows_equal_the_profile_of_their_union(
    sizes: list[int], seed: int, null_share: float
) -> None:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "x": np.where(rng.random(sum(sizes)) < null_share, np.nan, rng.gamma(2, 3, sum(sizes))),
            "k": rng.choice(["a", "b", "c"], sum(sizes)),
        }
    )
    union = profile(data, seed=seed)
    bounds = np.cumsum([0, *sizes])
    windows = [
        profile(data.iloc[start:stop], reference=union, seed=seed + i)
        for i, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True))
    ]
    merged = windows[0]
    for window in windows[1:]:
        merged = merged.merge(window, seed=seed)
    assert_same_summary(numeric(merged, "x"), numeric(union, "x"), data["x"].to_numpy())
    a, b = categorical(merged, "k"), categorical(union, "k")
    assert (a.count, a.nulls, a.frequencies, a.other) == (b.count, b.nulls, b.frequencies, b.other)
    assert a.reservoir.values.size == b.reservoir.values.size


def assert_same_summary(merged: NumericColumn, union: NumericColumn, raw: np.ndarray) -> None:
    assert (merged.count, merged.nulls) == (union.count, union.nulls)
    assert (merged.minimum, merged.maximum) == (union.minimum, union.maximum)
    assert merged.mean == pytest.approx(union.mean, rel=1e-9, abs=1e-12)
    assert merged.variance == pytest.approx(union.variance, rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(merged.histogram.counts, union.histogram.counts)
    assert merged.reservoir.seen == union.reservoir.seen
    assert merged.reservoir.values.size == union.reservoir.values.size
    valid = np.sort(raw[~np.isnan(raw)])
    if valid.size == 0:
        return
    ranks = np.linspace(0, 1, 21)
    for sketch in (merged.sketch, union.sketch):
        assert sketch.count == valid.size
        for rank, value in zip(ranks, sketch.quantiles(ranks), strict=True):
            below = np.searchsorted(valid, value, side="left") / valid.size
            at_most = np.searchsorted(valid, value, side="right") / valid.size
            assert below - sketch.rank_error - 1e-12 <= rank <= at_most + sketch.rank_error + 1e-12
