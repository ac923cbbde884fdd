"""Step-metric charts for the run pages: the JSON `modelyard.js` draws with uPlot, and the same
numbers as a table for screen readers. Runs log at different steps: a chart's x axis is the
union of their steps, with null where a run has no value (uPlot bridges the gap)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_CHART_POINTS = 2000
"""The most steps a chart draws (a longer history is thinned evenly, its last step kept)."""

MAX_TABLE_ROWS = 100
"""The most steps a chart's data table lists."""

_LOWER_IS_BETTER = re.compile(
    r"loss|err|mse|mae|rmse|mape|perplexity|latency|time|duration|seconds|bytes|size|brier",
    re.IGNORECASE,
)

History = Sequence[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class Chart:
    """One metric's chart: `spec` for `data-chart`, and a (maybe thinned) table of it."""

    key: str
    spec: str
    labels: list[str]
    rows: list[tuple[int, list[float | None]]]
    steps: int

    @property
    def thinned(self) -> bool:
        """Whether the table shows only some of the steps."""
        return len(self.rows) < self.steps


def thin(values: Sequence[int], most: int) -> list[int]:
    """At most `most` of `values`, evenly spread, the first and last kept."""
    if len(values) <= most:
        return list(values)
    last = len(values) - 1
    picked = sorted({round(i * last / (most - 1)) for i in range(most)})
    return [values[i] for i in picked]


def finite(value: float | None) -> float | None:
    """`value`, or None for NaN and infinities (which JSON cannot carry)."""
    return value if value is not None and math.isfinite(value) else None


def metric_chart(key: str, series: Mapping[str, History]) -> Chart:
    """The chart of metric `key`, one line per label in `series` (a run's history each)."""
    values = {label: dict(points) for label, points in series.items()}
    steps = sorted({step for points in values.values() for step in points})
    drawn = thin(steps, MAX_CHART_POINTS)
    spec = {
        "key": key,
        "title": "",  # the figure's heading names it
        "x": drawn,
        "xlabel": "step",
        "ylabel": key,
        "series": [
            {"label": label, "values": [finite(points.get(step)) for step in drawn]}
            for label, points in values.items()
        ],
    }
    rows = [(step, [points.get(step) for points in values.values()])
            for step in thin(steps, MAX_TABLE_ROWS)]  # fmt: skip
    return Chart(key=key, spec=json.dumps(spec, allow_nan=False), labels=list(values),
                 rows=rows, steps=len(steps))  # fmt: skip


def lower_is_better(key: str) -> bool:
    """Whether a smaller value of metric `key` is the better one (loss, error, latency, …)."""
    return _LOWER_IS_BETTER.search(key) is not None


def best(key: str, values: Sequence[float | None]) -> float | None:
    """The best of `values` for metric `key` (None when fewer than two can be compared)."""
    present = [value for value in values if value is not None and not math.isnan(value)]
    if len(present) < 2 or min(present) == max(present):  # nothing to choose between
        return None
    return min(present) if lower_is_better(key) else max(present)
