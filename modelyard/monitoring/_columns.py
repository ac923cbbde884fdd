"""Per-column summaries: what a profile keeps of a numeric or a categorical column."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInput
from modelyard.monitoring._reservoir import Reservoir
from modelyard.monitoring._sketch import QuantileSketch

FloatArray = npt.NDArray[np.float64]

#: Distinct categories counted exactly before the rarest are folded into `other`.
DEFAULT_CATEGORY_CAP = 1000


@dataclass(frozen=True, eq=False)
class Histogram:
    """Counts on `bins` equal-width bins over [low, high], plus values below and above."""

    low: float
    high: float
    counts: npt.NDArray[np.int64]  # underflow, bins..., overflow

    @property
    def edges(self) -> FloatArray:
        """The `bins + 1` edges of the inner bins."""
        return np.linspace(self.low, self.high, self.counts.size - 1)

    def add(self, values: FloatArray) -> Histogram:
        """This histogram with `values` counted in."""
        bins = self.counts.size - 2
        # Arithmetic binning is one pass; searchsorted on the edges would be log(bins) passes.
        scaled = (values - self.low) * (bins / (self.high - self.low))
        index = np.clip(np.floor(scaled), -1, bins).astype(np.int64) + 1
        index[values == self.high] = bins  # the last bin is closed, as in numpy.histogram
        counts = self.counts + np.bincount(index, minlength=bins + 2)
        return Histogram(self.low, self.high, counts)

    def merge(self, other: Histogram, *, column: str) -> Histogram:
        """Both histograms' counts; they must share their edges."""
        if (self.low, self.high, self.counts.size) != (other.low, other.high, other.counts.size):
            raise InvalidInput(
                f"column {column!r}: histograms on different edges cannot merge; profile every "
                "window with reference=<the reference profile> so they share edges"
            )
        return Histogram(self.low, self.high, self.counts + other.counts)


@dataclass(frozen=True, eq=False)
class NumericColumn:
    """Count, nulls, moments, a quantile sketch, a histogram and a sample of a numeric column."""

    count: int
    nulls: int
    minimum: float
    maximum: float
    mean: float
    m2: float  # sum of squared deviations from the mean, so merging stays exact (Chan et al.)
    histogram: Histogram
    sketch: QuantileSketch
    reservoir: Reservoir

    kind = "numeric"

    @property
    def valid(self) -> int:
        """Values that are not null."""
        return self.count - self.nulls

    @property
    def variance(self) -> float:
        """Sample variance (ddof=1) of the non-null values; 0 with fewer than two."""
        return self.m2 / (self.valid - 1) if self.valid > 1 else 0.0

    def merge(
        self, other: NumericColumn, *, column: str, rng: np.random.Generator
    ) -> NumericColumn:
        """The summary of both columns' values."""
        total = self.valid + other.valid
        delta = other.mean - self.mean
        mean = self.mean + delta * other.valid / total if total else 0.0
        m2 = self.m2 + other.m2 + delta**2 * self.valid * other.valid / total if total else 0.0
        return NumericColumn(
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            minimum=min(self.minimum, other.minimum),
            maximum=max(self.maximum, other.maximum),
            mean=mean,
            m2=m2,
            histogram=self.histogram.merge(other.histogram, column=column),
            sketch=self.sketch.merge(other.sketch, rng),
            reservoir=self.reservoir.merge(other.reservoir, rng),
        )


def summarise_numeric(
    values: FloatArray, *, histogram: Histogram, capacity: int, rng: np.random.Generator
) -> NumericColumn:
    """The summary of one chunk of floats (NaN is null)."""
    valid = values[~np.isnan(values)]
    sketch = QuantileSketch()
    sketch.update(valid, rng)
    empty = valid.size == 0
    mean = 0.0 if empty else float(valid.mean())
    return NumericColumn(
        count=int(values.size),
        nulls=int(values.size - valid.size),
        minimum=np.inf if empty else float(valid.min()),
        maximum=-np.inf if empty else float(valid.max()),
        mean=mean,
        m2=0.0 if empty else float(np.square(valid - mean).sum()),
        histogram=histogram.add(valid),
        sketch=sketch,
        reservoir=Reservoir.sample(valid, capacity=capacity, rng=rng),
    )


@dataclass(frozen=True, eq=False)
class CategoricalColumn:
    """Count, nulls, exact category counts (up to a cap, then `other`) and a sample."""

    count: int
    nulls: int
    frequencies: Mapping[str, int]
    other: int  # values in categories beyond the cap
    reservoir: Reservoir
    cap: int = DEFAULT_CATEGORY_CAP

    kind = "categorical"

    @property
    def valid(self) -> int:
        """Values that are not null."""
        return self.count - self.nulls

    def merge(
        self, other: CategoricalColumn, *, column: str, rng: np.random.Generator
    ) -> CategoricalColumn:
        """The summary of both columns' values."""
        del column  # categorical summaries always merge; the name is for the common signature
        counts = Counter(self.frequencies)
        counts.update(other.frequencies)
        frequencies, folded = _cap(counts, self.cap)
        return CategoricalColumn(
            count=self.count + other.count,
            nulls=self.nulls + other.nulls,
            frequencies=frequencies,
            other=self.other + other.other + folded,
            reservoir=self.reservoir.merge(other.reservoir, rng),
            cap=self.cap,
        )


def summarise_categorical(
    series: Any, *, capacity: int, cap: int, rng: np.random.Generator
) -> CategoricalColumn:
    """The summary of a pandas Series of objects, strings, booleans or categories (NA is null)."""
    counted = series.value_counts(dropna=True, sort=False)
    valid = int(counted.sum())
    frequencies, folded = _cap(
        Counter({str(key): int(number) for key, number in counted.items()}), cap
    )
    present = series.notna().to_numpy()
    sample = Reservoir.sample(series.to_numpy()[present], capacity=capacity, rng=rng)
    sample.values = sample.values.astype(str).astype(object)
    return CategoricalColumn(
        count=int(series.size),
        nulls=int(series.size) - valid,
        frequencies=frequencies,
        other=folded,
        reservoir=sample,
        cap=cap,
    )


def _cap(counts: Counter[str], cap: int) -> tuple[dict[str, int], int]:
    if len(counts) <= cap:
        return dict(counts), 0
    kept = dict(counts.most_common(cap))
    return kept, sum(counts.values()) - sum(kept.values())


Column = NumericColumn | CategoricalColumn
