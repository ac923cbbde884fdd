"""A mergeable quantile sketch whose rank error is certified, not estimated.

The sketch is a stack of sorted compactors in the style of KLL: level `h` holds items of weight
`2**h`. A level over capacity is sorted and every other item (from a random start) moves up with
twice the weight. One such compaction moves the rank of any query by at most the weight of the
items compacted, so the sketch adds those weights up as it goes: `rank_error` is a hard bound on
|estimated rank - true rank| / n, and the random start keeps the typical error far below it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Items per level; 1,024 gives a bound near 1% on a billion rows and about 0.1% in practice.
DEFAULT_CAPACITY = 1024
_EMPTY: FloatArray = np.empty(0, dtype=np.float64)


class QuantileSketch:
    """Quantiles and CDF of a stream of floats in bounded memory; merge two with `merge`."""

    __slots__ = ("capacity", "count", "error", "levels")

    def __init__(
        self,
        *,
        capacity: int = DEFAULT_CAPACITY,
        levels: list[FloatArray] | None = None,
        count: int = 0,
        error: int = 0,
    ) -> None:
        self.capacity = capacity
        self.levels: list[FloatArray] = levels if levels is not None else []
        self.count = count
        #: Absolute bound on the rank error of any query, summed over every compaction so far.
        self.error = error

    @property
    def rank_error(self) -> float:
        """The certified bound on |estimated - true| normalised rank (0 for an empty sketch)."""
        return self.error / self.count if self.count else 0.0

    def update(self, values: FloatArray, rng: np.random.Generator) -> None:
        """Add finite `values` (no NaN)."""
        if values.size == 0:
            return
        ordered = np.sort(values)
        self.count += int(ordered.size)
        level = 0
        if ordered.size > self.capacity:
            # One strided pick replaces `level` successive halvings: same bound, one pass.
            level = math.ceil(math.log2(ordered.size / self.capacity))
            step = 1 << level
            ordered = ordered[int(rng.integers(step)) :: step]
            self.error += step
        self._add(level, ordered, rng)

    def merge(self, other: QuantileSketch, rng: np.random.Generator) -> QuantileSketch:
        """A new sketch of both streams; neither operand changes."""
        merged = QuantileSketch(
            capacity=max(self.capacity, other.capacity),
            levels=[level.copy() for level in self.levels],
            count=self.count + other.count,
            error=self.error + other.error,
        )
        for height, items in enumerate(other.levels):
            if items.size:
                merged._add(height, items, rng)
        return merged

    def quantiles(self, ranks: FloatArray) -> FloatArray:
        """The value at each normalised rank in `ranks` (0..1)."""
        items, cumulative = self._weighted()
        if items.size == 0:
            return np.full(ranks.shape, np.nan)
        index = np.searchsorted(cumulative, ranks * self.count, side="left")
        return items[np.minimum(index, items.size - 1)]

    def cdf(self, points: FloatArray) -> FloatArray:
        """The estimated share of values <= each of `points`."""
        items, cumulative = self._weighted()
        if items.size == 0:
            return np.zeros(points.shape)
        index = np.searchsorted(items, points, side="right")
        below = np.where(index > 0, cumulative[np.maximum(index - 1, 0)], 0.0)
        return below / self.count

    def _weighted(self) -> tuple[FloatArray, FloatArray]:
        items = np.concatenate([_EMPTY, *self.levels])
        weights = np.concatenate(
            [_EMPTY, *(np.full(level.size, 2.0**h) for h, level in enumerate(self.levels))]
        )
        order = np.argsort(items, kind="stable")
        return items[order], np.cumsum(weights[order])

    def _add(self, level: int, items: FloatArray, rng: np.random.Generator) -> None:
        while len(self.levels) <= level:
            self.levels.append(_EMPTY)
        self.levels[level] = np.concatenate([self.levels[level], items])
        while level < len(self.levels) and self.levels[level].size > self.capacity:
            ordered = np.sort(self.levels[level])
            self.levels[level] = _EMPTY
            self.error += 1 << level
            if level + 1 == len(self.levels):
                self.levels.append(_EMPTY)
            kept = ordered[int(rng.integers(2)) :: 2]
            self.levels[level + 1] = np.concatenate([self.levels[level + 1], kept])
            level += 1
