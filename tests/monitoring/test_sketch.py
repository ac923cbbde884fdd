"""The quantile sketch and the reservoir on their own."""

from __future__ import annotations

import numpy as np
from scipy import stats

from modelyard.monitoring import QuantileSketch, Reservoir


def test_sketch_stays_within_its_stated_rank_error_on_a_million_values() -> None:
    rng = np.random.default_rng(3)
    values = rng.standard_cauchy(1_000_000)
    sketch = QuantileSketch()
    for chunk in np.array_split(values, 37):
        sketch.update(chunk, rng)
    assert sketch.count == values.size
    assert sketch.rank_error < 0.02
    assert sum(level.size for level in sketch.levels) < 20 * sketch.capacity
    points = np.quantile(values, np.linspace(0.01, 0.99, 50))
    truth = np.searchsorted(np.sort(values), points, side="right") / values.size
    assert np.max(np.abs(sketch.cdf(points) - truth)) <= sketch.rank_error


def test_empty_sketch_answers_nan_and_zero() -> None:
    sketch = QuantileSketch()
    sketch.update(np.empty(0), np.random.default_rng(0))
    assert np.isnan(sketch.quantiles(np.array([0.5]))).all()
    assert sketch.cdf(np.array([1.0])).tolist() == [0.0]
    assert sketch.rank_error == 0.0


def test_merged_reservoirs_are_uniform_over_both_streams() -> None:
    rng = np.random.default_rng(4)
    small = Reservoir.sample(np.zeros(1_000), capacity=500, rng=rng)
    large = Reservoir.sample(np.ones(9_000), capacity=500, rng=rng)
    shares = [small.merge(large, rng).values.mean() for _ in range(200)]
    # 90% of the union are ones; the mean share is within a few standard errors of that
    assert abs(np.mean(shares) - 0.9) < 0.005
    uniform = Reservoir.sample(rng.random(50_000), capacity=4_096, rng=rng)
    assert stats.kstest(uniform.values, "uniform").pvalue > 0.001
