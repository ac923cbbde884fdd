"""A bounded uniform sample of a stream, mergeable without bias.

Drift tests that need a sound p-value (Kolmogorov-Smirnov) run on these samples rather than on a
sketch: a KS statistic read off two sketches is not KS-distributed, and tests built on it fire far
more often than their alpha on identical distributions.
"""

from __future__ import annotations

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
