"""What the Monitoring pages show, built from a drift timeline and the alert history: chart
specs (JSON for `modelyard.js`), the per-column heat table, and each rule's latest state."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from modelyard.errors import InvalidInput
from modelyard.monitoring import SampleDrift, WindowDrift, duration

MAX_WINDOWS = 48
"""The most windows one page computes drift for (each costs a drift test per column)."""

CHART_COLUMNS = 8
"""Columns drawn in the per-column chart: those that drifted most (the table has them all)."""

_LEVELS = (0.05, 0.1, 0.2, 0.3, 0.5)  # drift scores (KS statistic, PSI …) → heat classes


class RecentDrift(OrderedDict[tuple[str, int, datetime, datetime], SampleDrift]):
    """The drift of finished windows, least recently stored dropped past `size` (one per
    server, shared by the requests its threads answer)."""

    def __init__(self, size: int = 4096) -> None:
        super().__init__()
        self.size = size
        self._lock = threading.Lock()

    def __setitem__(self, key: tuple[str, int, datetime, datetime], value: SampleDrift) -> None:
        with self._lock:
            super().__setitem__(key, value)
            while len(self) > self.size:
                self.popitem(last=False)


def parse_span(window: str, span: str) -> tuple[timedelta, int]:
    """`window=1h&span=24h` as (window, number of windows); a 400 naming what is wrong."""
    try:
        length, total = duration(window), duration(span)
    except ValueError as error:
        raise InvalidInput(
            f"window and span are durations such as 15m, 1h or 2d: {error}"
        ) from None
    if length < timedelta(minutes=1):
        raise InvalidInput(f"window {window!r} is shorter than a minute")
    count = round(total / length)
    if count < 1:
        raise InvalidInput(f"span {span!r} is shorter than the window {window!r}")
    if count > MAX_WINDOWS:
        raise InvalidInput(
            f"span {span!r} over window {window!r} makes {count} windows; the most is "
            f"{MAX_WINDOWS}: use a longer window or a shorter span"
        )
    return length, count


def chart(title: str, x: Sequence[float], series: dict[str, list[float | None]], *,
          ylabel: str) -> str:  # fmt: skip
    """A `data-chart` attribute's JSON (Jinja escapes it into the attribute)."""
    return json.dumps({
        "title": title, "x": list(x), "time": True, "xlabel": "window start", "ylabel": ylabel,
        "series": [{"label": label, "values": values} for label, values in series.items()],
    })  # fmt: skip


def x_axis(windows: Sequence[WindowDrift]) -> list[float]:
    """Each window's start, as Unix seconds (uPlot's time axis)."""
    return [window.since.timestamp() for window in windows]


def drift_chart(windows: Sequence[WindowDrift]) -> str:
    """The share of drifted input columns (and prediction drift) per window."""
    return chart("Share of drifted columns", x_axis(windows), {
        "inputs": [w.inputs.share if w.inputs else None for w in windows],
        "predictions": [w.predictions.share if w.predictions else None for w in windows],
    }, ylabel="share")  # fmt: skip


def column_chart(windows: Sequence[WindowDrift], columns: Sequence[str]) -> str:
    """The drift score of the columns that drifted most, per window."""
    scores = column_scores(windows)
    top = sorted(columns, key=lambda c: -max((s or 0.0) for s in scores[c]))[:CHART_COLUMNS]
    return chart("Drift score of the most drifted columns", x_axis(windows),
                 {name: scores[name] for name in top}, ylabel="score")  # fmt: skip


def column_scores(windows: Sequence[WindowDrift]) -> dict[str, list[float | None]]:
    """Each input column's score per window (None where a window has no verdict)."""
    scores: dict[str, list[float | None]] = {}
    for index, window in enumerate(windows):
        for column in window.inputs.columns if window.inputs else ():
            scores.setdefault(column.column, [None] * len(windows))[index] = column.score
    return scores


def performance_chart(windows: Sequence[WindowDrift]) -> str | None:
    """Metrics from feedback per window, and the accuracy estimated before labels."""
    names = sorted({name for w in windows if w.performance for name in w.performance.metrics})
    series: dict[str, list[float | None]] = {
        name: [w.performance.metrics.get(name) if w.performance else None for w in windows]
        for name in names
    }
    if any(w.estimated_accuracy is not None for w in windows):
        series["estimated accuracy"] = [w.estimated_accuracy for w in windows]
    if not series:
        return None
    return chart("Performance", x_axis(windows), series, ylabel="metric")


@dataclass(frozen=True, slots=True)
class HeatCell:
    """One column's drift in one window, as the heat table shows it."""

    score: float | None
    p_value: float | None
    drifted: bool
    level: int  # 0 (no drift) … 5: the cell's colour


def heat_table(windows: Sequence[WindowDrift]) -> list[tuple[str, list[HeatCell]]]:
    """Rows of (column, a cell per window), the most drifted columns first."""
    cells: dict[str, list[HeatCell]] = {}
    empty = HeatCell(None, None, False, 0)
    for index, window in enumerate(windows):
        for column in window.inputs.columns if window.inputs else ():
            row = cells.setdefault(column.column, [empty] * len(windows))
            level = sum(column.score >= edge for edge in _LEVELS)
            row[index] = HeatCell(column.score, column.p_value, column.drifted, level)
    return sorted(cells.items(), key=lambda item: -sum(c.drifted for c in item[1]))


def rule_states(events: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Each rule's latest state in a history read newest first."""
    states: dict[str, str] = {}
    for event in events:
        rule, kind = event.get("rule"), event.get("event")
        if isinstance(rule, str) and kind != "actions" and rule not in states:
            states[rule] = str(kind)
    return states


def overall(states: dict[str, str]) -> str:
    """A model's alert state: firing when any rule fires, pending when any waits, else ok."""
    for state in ("firing", "pending"):
        if state in states.values():
            return state
    return "ok" if states else "none"
