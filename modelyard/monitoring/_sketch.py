"""A mergeable quantile sketch whose rank error is certified, not estimated.

The sketch is a stack of sorted compactors in the style of KLL: level `h` holds items of weight
`2**h`. A level over capacity is sorted and every other item (from a random start) moves up with
twice the weight. One such compaction moves the rank of any query by at most the weight of the
items compacted, so the sketch adds those weights up as it goes: `rank_error` is a hard bound on
|estimated rank - true rank| / n, and the random start keeps the typical error far below it.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

#: Items per level; 1,024 gives a bound near 1% on a billion rows and about 0.1% in practice.
DEFAULT_CAPACITY = 1024
_EMPTY: FloatArray = np.empty(0, dtype=np.float64)


class QuantileSketch:
    """Quantiles and CDF of a stream of floats in bounded memory; merge two with `merge`."""

    __slots__ = ("_weights", "capacity", "count", "error", "levels")

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
        self._weights: tuple[FloatArray, FloatArray] | None = None  # _weighted, until a change

    @property
    def rank_error(self) -> float:
        """The certified bound on |estimated - true| normalised rank (0 for an empty sketch)."""
        return self.error / self.count if self.count else 0.0

    def update(self, values: FloatArray, rng: np.random.Generator) -> None:
        """Add finite `values` (no NaN)."""
        if values.size == 0:
            return
        self._weights = None
        self.count += int(values.size)
        if values.size <= self.capacity:
            self._add(0, np.sort(values), rng)
            return
        # One strided pick replaces `level` successive halvings: same bound, one pass.
        level = math.ceil(math.log2(values.size / self.capacity))
        step = 1 << level
        ranks = np.arange(int(rng.integers(step)), values.size, step)
        self.error += step
        self._add(level, order_statistics(values, ranks), rng)

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
        # Kept until the sketch changes: drift tests ask a sketch several times.
        if self._weights is None:
            items = np.concatenate([_EMPTY, *self.levels])
            weights = np.concatenate(
                [_EMPTY, *(np.full(level.size, 2.0**h) for h, level in enumerate(self.levels))]
            )
            order = np.argsort(items, kind="stable")
            self._weights = items[order], np.cumsum(weights[order])
        return self._weights

    def _add(self, level: int, items: FloatArray, rng: np.random.Generator) -> None:
        self._weights = None
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


def order_statistics(values: FloatArray, ranks: npt.NDArray[np.int64]) -> FloatArray:
    """`np.sort(values)[ranks]` (`ranks` ascending) without sorting every value.

    Values go into equal-width buckets by arithmetic, which keeps their order between buckets;
    only the buckets that hold a wanted rank are kept, and the same is done again on them until
    few are left to sort (or bucketing stops paying, when most values are equal)."""
    if values.size <= max(_SORT_BELOW, 4 * ranks.size):
        return np.sort(values)[ranks]
    # The range comes from a strided probe without its extremes, so outliers (clipped into the
    # end buckets) do not squeeze every other value into a few buckets.
    probe = np.sort(values[:: values.size // 1024])
    low, high = float(probe[probe.size // 128]), float(probe[-1 - probe.size // 128])
    buckets = values.size // 4
    scale = buckets / (high - low) if high > low else 0.0
    if not (math.isfinite(scale) and math.isfinite(high - low)) or scale == 0.0:
        return np.sort(values)[ranks]
    if np.count_nonzero(np.diff(_buckets(probe, low, scale, buckets))) < probe.size // 2:
        return np.sort(values)[ranks]  # crowded: most values would share a few buckets
    index = _buckets(values, low, scale, buckets)
    counts = np.bincount(index, minlength=buckets)
    ends = np.cumsum(counts)
    holder = np.searchsorted(ends, ranks, side="right")
    wanted = np.zeros(buckets, dtype=bool)
    wanted[holder] = True
    kept = np.where(wanted, counts, 0)
    if kept.sum() > values.size // 2:
        return np.sort(values)[ranks]
    starts = np.cumsum(kept) - kept  # where each wanted bucket begins among the kept values
    positions = starts[holder] + ranks - (ends[holder] - counts[holder])
    return order_statistics(values.compress(wanted.take(index)), positions)


def _buckets(values: FloatArray, low: float, scale: float, buckets: int) -> npt.NDArray[np.intp]:
    # Subtracting, scaling, clipping and truncating each keep order, so buckets keep it too.
    # The result is a scratch buffer: valid until the next call in this thread.
    scaled = np.subtract(values, low, out=scratch("buckets", values.size, np.float64))
    with np.errstate(over="ignore"):  # an overflow to ±inf lands in an end bucket, as it should
        scaled *= scale
    np.clip(scaled, 0.0, float(buckets - 1), out=scaled)  # one pass, float bounds: no casting
    index = scratch("bucket-index", values.size, np.intp)  # what bincount and indexing take
    np.copyto(index, scaled, casting="unsafe")  # truncates, as astype does
    return index


def scratch(slot: str, size: int, dtype: Any) -> npt.NDArray[Any]:
    """A reusable buffer of `size` items for this thread's `slot`, for a temporary that does not
    outlive the caller. A chunk-sized temporary allocated afresh costs more in page faults (the
    allocator hands big blocks back to the system on free) than the arithmetic done in it."""
    if size > _SCRATCH_MOST:
        return np.empty(size, dtype)
    buffers: dict[tuple[str, str], npt.NDArray[Any]] = _LOCAL.__dict__.setdefault("buffers", {})
    key = (slot, np.dtype(dtype).str)
    buffer = buffers.get(key)
    if buffer is None or buffer.size < size:
        buffer = buffers[key] = np.empty(max(size, _SCRATCH_LEAST), dtype)
    return buffer[:size]


_LOCAL = threading.local()
#: Items from which a temporary is allocated afresh (a profile's chunk is 131,072 rows).
_SCRATCH_MOST = 1 << 18
#: A buffer's least size: a profile's chunk, so that a longer table does not grow it (np.empty
#: only reserves, so a small table pays nothing for the pages it does not touch).
_SCRATCH_LEAST = 1 << 17


#: Below this many values a plain sort is as fast as bucketing.
_SORT_BELOW = 32_768
