"""The drift tests: each compares one column's reference summary with its current summary.

A test with a p-value fires when p < threshold (the threshold is its alpha); a distance fires when
the score >= threshold. Defaults follow common practice: alpha 0.05, PSI 0.2, normed Wasserstein
0.1, Jensen-Shannon distance 0.1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from modelyard._imports import require
from modelyard.monitoring._columns import CategoricalColumn, NumericColumn

FloatArray = npt.NDArray[np.float64]
Outcome = tuple[float, float | None]  # score, p-value

# Proportions are floored here so that an empty bin gives a large, finite PSI.
_FLOOR = 1e-4
_PSI_BINS = 10
_WASSERSTEIN_POINTS = 256


@dataclass(frozen=True)
class DriftTest:
    """A named comparison of two column summaries of one kind, with its default threshold."""

    name: str
    kind: str  # "numeric" or "categorical"
    threshold: float
    has_p_value: bool
    compare: Callable[[Any, Any], Outcome]

    def fires(self, score: float, p_value: float | None, threshold: float) -> bool:
        """Whether an outcome counts as drift at `threshold`."""
        if p_value is not None:
            return p_value < threshold
        return score >= threshold


def kolmogorov_smirnov(reference: NumericColumn, current: NumericColumn) -> Outcome:
    """Two-sample KS. When both reservoirs hold every value, on the values themselves. Past
    that, on the full counts with the statistic read from the two sketches, less the sum of
    their certified rank errors: the true statistic is at least that large, so the p-value is
    conservative (it stays calibrated, which sketch-based KS elsewhere is not) while keeping the
    power of every row rather than of a sample."""
    n, m = reference.sketch.count, current.sketch.count
    if n <= reference.reservoir.values.size and m <= current.reservoir.values.size:
        stats = require("scipy.stats", extra="monitor")  # a second to import: only when needed
        values = reference.reservoir.values, current.reservoir.values
        result = stats.ks_2samp(*values, method="asymp")
        return float(result.statistic), float(result.pvalue)
    # Points in any order and repeated give the same maximum: no union (a sort) needed.
    points = np.concatenate([reference.sketch.quantiles(_GRID), current.sketch.quantiles(_GRID)])
    statistic = float(np.max(np.abs(reference.sketch.cdf(points) - current.sketch.cdf(points))))
    certain = max(statistic - reference.sketch.rank_error - current.sketch.rank_error, 0.0)
    special = require("scipy.special", extra="monitor")
    # kstwobign.sf is this function behind a costly per-call frozen-distribution layer
    p_value = float(special.kolmogorov(certain * np.sqrt(n * m / (n + m))))
    return statistic, p_value


_GRID = np.linspace(0.0, 1.0, 2049)
"""Ranks at which the two sketches' CDFs are compared (every 1/2048 of each distribution)."""


def numeric_psi(reference: NumericColumn, current: NumericColumn) -> Outcome:
    """Population stability index on deciles of the reference, read from both sketches."""
    inner = np.arange(1, _PSI_BINS) / _PSI_BINS
    edges = np.unique(reference.sketch.quantiles(inner))
    expected = np.diff(np.concatenate([[0.0], reference.sketch.cdf(edges), [1.0]]))
    actual = np.diff(np.concatenate([[0.0], current.sketch.cdf(edges), [1.0]]))
    return _psi(expected, actual), None


def wasserstein(reference: NumericColumn, current: NumericColumn) -> Outcome:
    """Wasserstein-1 distance from the two sketches' quantiles, over the reference's std."""
    ranks = (np.arange(_WASSERSTEIN_POINTS) + 0.5) / _WASSERSTEIN_POINTS
    gap = np.abs(reference.sketch.quantiles(ranks) - current.sketch.quantiles(ranks))
    scale = float(np.sqrt(reference.variance))
    # A constant reference has no spread to scale by; the raw distance is then the honest score.
    return float(gap.mean()) / (scale if scale > 0 else 1.0), None


def chi_square(reference: CategoricalColumn, current: CategoricalColumn) -> Outcome:
    """Chi-square test of homogeneity on the two windows' category counts."""
    table = _counts(reference, current)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 0.0, 1.0
    # chi2_contingency's own arithmetic, without its per-call validation layers (most of its time)
    expected = np.multiply(table.sum(axis=1, keepdims=True), table.sum(axis=0, keepdims=True))
    expected /= table.sum()
    if not expected.all():  # a window without values: scipy's own error, as before
        stats = require("scipy.stats", extra="monitor")
        result = stats.chi2_contingency(table, correction=False)
        return float(result.statistic), float(result.pvalue)
    special = require("scipy.special", extra="monitor")
    statistic = float(np.sum((table - expected) ** 2 / expected))
    freedom = (table.shape[0] - 1) * (table.shape[1] - 1)
    return statistic, float(special.chdtrc(freedom, statistic))


def categorical_psi(reference: CategoricalColumn, current: CategoricalColumn) -> Outcome:
    """Population stability index over the categories of both windows."""
    table = _counts(reference, current)
    return _psi(*_shares(table)), None


def jensen_shannon(reference: CategoricalColumn, current: CategoricalColumn) -> Outcome:
    """Jensen-Shannon distance (base 2, so within 0..1) between the category shares."""
    distance = require("scipy.spatial.distance", extra="monitor")
    expected, actual = _shares(_counts(reference, current))
    return float(distance.jensenshannon(expected, actual, base=2)), None


def _psi(expected: FloatArray, actual: FloatArray) -> float:
    expected = np.maximum(expected, _FLOOR)
    actual = np.maximum(actual, _FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def _counts(reference: CategoricalColumn, current: CategoricalColumn) -> FloatArray:
    keys = list(dict.fromkeys([*reference.frequencies, *current.frequencies]))
    rows = [
        [*(column.frequencies.get(key, 0) for key in keys), column.other]
        for column in (reference, current)
    ]
    return np.array(rows, dtype=np.float64)


def _shares(table: FloatArray) -> tuple[FloatArray, FloatArray]:
    totals = np.maximum(table.sum(axis=1, keepdims=True), 1.0)
    shares = table / totals
    return shares[0], shares[1]


#: The built-in tests by (column kind, name); PSI exists for both kinds.
BUILTIN_TESTS: Mapping[tuple[str, str], DriftTest] = MappingProxyType(
    {
        (test.kind, test.name): test
        for test in (
            DriftTest("ks", "numeric", 0.05, True, kolmogorov_smirnov),
            DriftTest("psi", "numeric", 0.2, False, numeric_psi),
            DriftTest("wasserstein", "numeric", 0.1, False, wasserstein),
            DriftTest("chisquare", "categorical", 0.05, True, chi_square),
            DriftTest("psi", "categorical", 0.2, False, categorical_psi),
            DriftTest("jensenshannon", "categorical", 0.1, False, jensen_shannon),
        )
    }
)
