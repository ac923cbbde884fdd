"""The fast paths of `profile` and the drift tests give what the plain paths give."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from modelyard.monitoring import (
    CategoricalColumn,
    Histogram,
    _codes,
    _profile,
    _statistics,
    profile,
)
from modelyard.monitoring._reservoir import Reservoir
from modelyard.monitoring._sketch import QuantileSketch

ROWS = 20_000


def _object_column(rng: np.random.Generator) -> np.ndarray:
    levels = np.array(["red", "green", "blue", None, np.nan], dtype=object)
    values = rng.choice(levels, ROWS)
    # equal texts in distinct objects, as rows read one by one would be
    values[::7] = np.array(["".join(["r", "ed"]) for _ in values[::7]], dtype=object)
    return values


def _categorical(data: object) -> CategoricalColumn:
    column = profile(data, seed=3).columns["c"]
    assert isinstance(column, CategoricalColumn)
    return column


def test_shared_strings_profile_as_hashed_strings(monkeypatch: pytest.MonkeyPatch) -> None:
    values = _object_column(np.random.default_rng(0))
    assert _codes.shared_text_codes(values) is not None  # the identity path is taken
    fast = _categorical(pd.DataFrame({"c": pd.Series(values, dtype=object)}))
    monkeypatch.setattr(_codes, "_SHARED_MIN_ROWS", 10**12)  # hashing every string instead
    slow = _categorical(pd.DataFrame({"c": pd.Series(values, dtype=object)}))
    assert dict(fast.frequencies) == dict(slow.frequencies)
    assert (fast.count, fast.nulls, fast.other) == (slow.count, slow.nulls, slow.other)
    assert fast.nulls == int(pd.isna(values).sum())
    assert list(fast.reservoir.values) == list(slow.reservoir.values)


def test_values_that_are_not_strings_keep_pandas_equality() -> None:
    values = np.array([1, 1.0, "a", None] * 2_000, dtype=object)
    assert _codes.shared_text_codes(values) is None  # 1 and 1.0: one category to pandas
    assert _codes.shared_text_codes(np.array([f"v{i}" for i in range(ROWS)], dtype=object)) is None


def test_histograms_added_in_turn_keep_their_own_counts() -> None:
    rng = np.random.default_rng(1)
    empty = Histogram(-2.0, 2.0, np.zeros(10, dtype=np.int64))
    first, second = rng.normal(size=50_000), rng.normal(1, 1, 30_000)
    for values in (first, second):
        counts = empty.add(values).counts
        inner = np.histogram(values, bins=8, range=(-2.0, 2.0))[0]
        assert counts[0] == np.sum(values < -2) and counts[-1] == np.sum(values > 2)
        assert np.abs(counts[1:-1] - inner).sum() <= 2  # float edges may move a boundary value
    assert np.array_equal(
        empty.add(first).add(second).counts, empty.add(np.r_[first, second]).counts
    )


def test_sketch_answers_change_with_the_sketch() -> None:
    rng = np.random.default_rng(2)
    sketch = QuantileSketch()
    sketch.update(rng.normal(0, 1, 10_000), rng)
    before = sketch.quantiles(np.array([0.5]))[0]
    sketch.update(rng.normal(100, 1, 30_000), rng)  # cached answers must not survive this
    assert sketch.quantiles(np.array([0.5]))[0] > 50 > before
    merged = sketch.merge(sketch, rng)
    assert merged.cdf(np.array([50.0]))[0] == pytest.approx(0.25, abs=0.02)


def test_chi_square_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        size = int(rng.integers(2, 40))
        counts = [rng.integers(0, 10 ** int(rng.integers(1, 6)), size) for _ in range(2)]
        columns = [
            CategoricalColumn(
                count=int(c.sum()),
                nulls=0,
                frequencies={str(k): int(v) for k, v in enumerate(c)},
                other=0,
                reservoir=Reservoir(np.empty(0, dtype=object), seen=0, capacity=1),
            )
            for c in counts
        ]
        table = _statistics._counts(*columns)
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2 or not table.sum(axis=1).all():
            continue
        expected = scipy.stats.chi2_contingency(table, correction=False)
        assert _statistics.chi_square(*columns) == (expected.statistic, expected.pvalue)


def test_the_second_thread_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    table = pd.DataFrame(
        {
            "x": rng.normal(size=ROWS),
            "c": pd.Series(_object_column(rng), dtype=object),
            "y": rng.exponential(size=ROWS),
            "d": rng.choice(np.array(["a", "b"]), ROWS),
        }
    )
    threaded = profile(table, seed=5).to_bytes()
    assert profile(table, seed=5).to_bytes() == threaded
    monkeypatch.setattr(_profile, "_THREAD_ROWS", 10**12)
    assert profile(table, seed=5).to_bytes() == threaded
