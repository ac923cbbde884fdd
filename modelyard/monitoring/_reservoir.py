"""A bounded uniform sample of a stream, mergeable without bias.

Drift tests that need a sound p-value (Kolmogorov-Smirnov) run on these samples rather than on a
sketch: a KS statistic read off two sketches is not KS-distributed, and tests built on it fire far
more often than their alpha on identical distributions.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Values kept per column and window.
DEFAULT_CAPACITY = 4096
# numpy's hypergeometric sampler refuses populations this large; a binomial is exact enough there.
_HYPERGEOMETRIC_LIMIT = 10**9


class Reservoir:
    """At most `capacity` values drawn uniformly without replacement from `seen` values."""

    __slots__ = ("capacity", "seen", "values")

    def __init__(self, values: npt.NDArray[Any], *, seen: int, capacity: int) -> None:
        self.values = values
        self.seen = seen
        self.capacity = capacity

    @classmethod
    def sample(
        cls, values: npt.NDArray[Any], *, capacity: int, rng: np.random.Generator
    ) -> Reservoir:
        """A reservoir of `values` (all of them when they fit)."""
        seen = int(values.size)
        if seen > capacity:
            kept = values[rng.choice(seen, capacity, replace=False)]
        else:
            kept = values.copy()
        return cls(kept, seen=seen, capacity=capacity)

    @classmethod
    def take(
        cls, values: npt.NDArray[Any], positions: npt.NDArray[np.intp], *, capacity: int
    ) -> Reservoir:
        """A reservoir of `values` at `positions`, a uniform draw of at most `capacity` of them."""
        return cls(values[positions], seen=int(values.size), capacity=capacity)

    def merge(self, other: Reservoir, rng: np.random.Generator) -> Reservoir:
        """A uniform sample of both streams: how many come from each side is hypergeometric."""
        capacity = max(self.capacity, other.capacity)
        size = min(capacity, self.values.size + other.values.size)
        total = self.seen + other.seen
        if total == 0:
            return Reservoir(self.values.copy(), seen=0, capacity=capacity)
        if total < _HYPERGEOMETRIC_LIMIT:
            mine = int(rng.hypergeometric(self.seen, other.seen, size)) if size else 0
        else:
            mine = int(rng.binomial(size, self.seen / total))
        mine = min(max(mine, size - other.values.size), self.values.size)
        values = np.concatenate(
            [_pick(self.values, mine, rng), _pick(other.values, size - mine, rng)]
        )
        return Reservoir(values, seen=total, capacity=capacity)


def _pick(values: npt.NDArray[Any], size: int, rng: np.random.Generator) -> npt.NDArray[Any]:
    if size >= values.size:
        return values
    return values[rng.choice(values.size, size, replace=False)]


_KEPT_DRAWS = 32
"""Draws kept at once (32 KiB each at the default capacity)."""


class Draws:
    """Reservoir positions drawn once per chunk and count of values, so that the columns of a
    table without nulls sample the same rows (one draw instead of one per column, and a sample
    whose rows line up across columns). Each draw comes from its own key, so the positions do
    not depend on the order (or the thread) in which columns ask for them."""

    def __init__(self, entropy: int | Sequence[int], *, capacity: int) -> None:
        self._entropy = [entropy] if isinstance(entropy, int) else list(entropy)
        self._capacity = capacity
        self._drawn: dict[tuple[int, int], npt.NDArray[np.intp]] = {}
        self._lock = threading.Lock()

    def positions(self, chunk: int, seen: int) -> npt.NDArray[np.intp]:
        """Positions of a uniform sample of min(capacity, seen) of `seen` values of `chunk`."""
        key = (chunk, seen)
        with self._lock:  # text columns are profiled on another thread
            drawn = self._drawn.get(key)
            if drawn is None:
                drawn = self._draw(chunk, seen)
                if len(self._drawn) >= _KEPT_DRAWS:  # bounded: memory stays flat in the rows
                    del self._drawn[next(iter(self._drawn))]  # drawn again alike if asked
                self._drawn[key] = drawn
            return drawn

    def _draw(self, chunk: int, seen: int) -> npt.NDArray[np.intp]:
        rng = np.random.default_rng([*self._entropy, chunk, seen, self._capacity])
        if seen > self._capacity:
            return rng.choice(seen, self._capacity, replace=False)
        return np.arange(seen)
