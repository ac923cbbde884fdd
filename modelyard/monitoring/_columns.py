"""Per-column summaries: what a profile keeps of a numeric or a categorical column."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard.errors import InvalidInput
from modelyard.monitoring._reservoir import Reservoir
from modelyard.monitoring._sketch import QuantileSketch, scratch

FloatArray = npt.NDArray[np.float64]
#: Positions of a uniform sample of the given number of values (shared between columns).
Draw = Callable[[int], npt.NDArray[np.intp]]

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
        # Arithmetic binning is a few passes in place; searchsorted would be log(bins) passes.
        scaled = np.subtract(values, self.low, out=scratch("histogram", values.size, np.float64))
        with np.errstate(over="ignore"):  # a value overflowing to ±inf is out of range anyway
            scaled *= bins / (self.high - self.low)
        np.clip(scaled, -1.0, float(bins), out=scaled)  # one pass, float bounds: no casting
        scaled += 1  # now >= 0, where truncating (copyto, as astype) is flooring
        index = scratch("histogram-index", values.size, np.intp)  # intp: bincount's own type
        np.copyto(index, scaled, casting="unsafe")
        added = np.bincount(index, minlength=bins + 2)
        top = np.count_nonzero(values == self.high)  # the last bin is closed, as in numpy
        added[bins], added[bins + 1] = added[bins] + top, added[bins + 1] - top
        return Histogram(self.low, self.high, self.counts + added)

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
    #: Values present but not numbers (a string or a bool); left out of every statistic, not nulls.
    mismatches: int = 0

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
            mismatches=self.mismatches + other.mismatches,
        )


def summarise_numeric(
    values: FloatArray,
    *,
    histogram: Histogram,
    capacity: int,
    rng: np.random.Generator,
    mismatches: int = 0,
    draw: Draw | None = None,
) -> NumericColumn:
    """The summary of one chunk of floats (NaN is null, or one of the `mismatches`)."""
    missing = np.isnan(values)
    valid = values[~missing] if missing.any() else values
    sketch = QuantileSketch()
    sketch.update(valid, rng)
    empty = valid.size == 0
    mean = 0.0 if empty else float(valid.mean())
    with np.errstate(invalid="ignore"):  # inf - inf: an infinite value makes m2 NaN, quietly
        deviations = np.subtract(valid, mean, out=scratch("deviations", valid.size, np.float64))
    return NumericColumn(
        count=int(values.size),
        nulls=int(values.size - valid.size) - mismatches,
        minimum=np.inf if empty else float(valid.min()),
        maximum=-np.inf if empty else float(valid.max()),
        mean=mean,
        m2=float(np.square(deviations, out=deviations).sum()),
        histogram=histogram.add(valid),
        sketch=sketch,
        reservoir=_sample(valid, capacity, rng, draw),
        mismatches=mismatches,
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
    #: Values present but not categories (kept for symmetry with numeric columns); not nulls.
    mismatches: int = 0

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
            mismatches=self.mismatches + other.mismatches,
        )


@dataclass(frozen=True)
class Categories:
    """One chunk of a categorical column: how many rows, the count of each label (a label may
    repeat when two values print alike, 1 and "1"), and the labels of valid values by position
    among the valid values, for the sample."""

    rows: int
    labels: Sequence[str]
    counts: npt.NDArray[np.int64]
    pick: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.object_]]

    @classmethod
    def from_codes(cls, codes: npt.NDArray[np.intp], labels: Sequence[str]) -> Categories:
        """The chunk of `codes` into `labels`, -1 for null."""
        if not labels:
            valid = codes[:0]
        else:  # a column without nulls needs no copy
            valid = codes if codes.size == 0 or codes.min() >= 0 else codes[codes >= 0]
        names = np.array(labels, dtype=object)
        counts = np.bincount(valid, minlength=len(labels)).astype(np.int64)
        return cls(int(codes.size), labels, counts, lambda positions: names[valid[positions]])


def summarise_categorical(
    chunk: Categories,
    *,
    capacity: int,
    cap: int,
    rng: np.random.Generator,
    draw: Draw | None = None,
) -> CategoricalColumn:
    """The summary of one chunk of a categorical column."""
    tally: Counter[str] = Counter()
    for label, number in zip(chunk.labels, chunk.counts.tolist(), strict=True):
        if number:
            tally[label] += number
    frequencies, folded = _cap(tally, cap)
    valid = int(chunk.counts.sum())
    if draw is None:
        sample = Reservoir.sample(np.arange(valid), capacity=capacity, rng=rng)
    else:  # the positions drawn are the sample of positions: no arange of every row to index
        sample = Reservoir(np.array(draw(valid)), seen=valid, capacity=capacity)
    sample.values = chunk.pick(sample.values) if valid else _NO_LABELS
    return CategoricalColumn(
        count=chunk.rows,
        nulls=chunk.rows - valid,
        frequencies=frequencies,
        other=folded,
        reservoir=sample,
        cap=cap,
    )


_NO_LABELS: npt.NDArray[np.object_] = np.empty(0, dtype=object)


def _sample(
    values: npt.NDArray[Any], capacity: int, rng: np.random.Generator, draw: Draw | None
) -> Reservoir:
    if draw is None:
        return Reservoir.sample(values, capacity=capacity, rng=rng)
    return Reservoir.take(values, draw(int(values.size)), capacity=capacity)


def _cap(counts: Counter[str], cap: int) -> tuple[dict[str, int], int]:
    if len(counts) <= cap:
        return dict(counts), 0
    kept = dict(counts.most_common(cap))
    return kept, sum(counts.values()) - sum(kept.values())


Column = NumericColumn | CategoricalColumn
