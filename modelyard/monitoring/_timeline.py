"""Drift and performance over time: a span of a version's traffic cut into windows, each one
compared with the version's reference, from one read of the prediction log.

Each window's drift is tested on a uniform sample of its records (`sample`, 200 by default:
enough for the tests to see a shift, few enough to keep a page fast); its performance uses the
records that got feedback among up to `PROBE` (2,000) of the window's.

Parsing and testing the samples is the slow part, so a caller may keep the drift of finished
windows in `cache`: windows are aligned to multiples of their length, so the same windows come
back on the next view (performance is computed afresh: feedback arrives late).

>>> timeline = drift_timeline(model="fraud", version=3, reference=read_reference(folder),
...                           predictions=home / "predictions", feedback=home / "feedback",
...                           edges=window_edges(now, timedelta(hours=1), 24))
>>> [w.inputs.share for w in timeline.windows if w.inputs]
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InvalidInput, ModelyardError
from modelyard.monitoring._columns import NumericColumn
from modelyard.monitoring._drift import ColumnDrift, DriftReport, detect_drift, testable_columns
from modelyard.monitoring._feedback import labelled_rows
from modelyard.monitoring._log_scan import Bucket, parse_lines, parse_outputs
from modelyard.monitoring._log_store import PredictionStore, store_or_files
from modelyard.monitoring._performance import Performance, performance
from modelyard.monitoring._profile import Profile, profile
from modelyard.monitoring._reports import estimated_accuracy
from modelyard.monitoring._statistics import BUILTIN_TESTS
from modelyard.monitoring._windows import flat_columns, log_array, window_columns

SAMPLE = 200
"""Records per window the drift tests look at."""

SHARE = 0.5
"""The share of drifted columns that marks a window as drifted (`detect_drift`'s default)."""


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SampleDrift:
    """What a window's sample says (what `cache` keeps of a finished window)."""

    rows: int  # rows in the sampled records (a request may carry several)
    inputs: DriftReport | None
    predictions: DriftReport | None
    estimated_accuracy: float | None
    problem: str  # why there is no verdict although there are rows
    damaged: int  # log lines that could not be read


DriftCache = MutableMapping[tuple[str, int, datetime, datetime], SampleDrift]


def window_edges(until: datetime, window: timedelta, windows: int) -> list[datetime]:
    """Edges of `windows` windows: whole ones aligned to multiples of `window` (since the
    epoch), then the one in progress, which ends at `until`."""
    done = _EPOCH + window * ((until - _EPOCH) // window)
    return [done - window * (windows - 1 - index) for index in range(windows)] + [until]


@dataclass(frozen=True, slots=True)
class WindowDrift:
    """One window of a timeline."""

    since: datetime
    until: datetime
    requests: int
    rows: int  # rows in the sampled records (a request may carry several)
    inputs: DriftReport | None
    predictions: DriftReport | None
    performance: Performance | None
    estimated_accuracy: float | None
    problem: str = ""  # why the window has no drift verdict, when it has rows but none


@dataclass(frozen=True, slots=True)
class Timeline:
    """A version's windows, oldest first, and how many damaged log lines were skipped."""

    model: str
    version: int
    windows: list[WindowDrift]
    damaged: int


def drift_timeline(
    *,
    model: str,
    version: int,
    reference: tuple[Profile, Profile],
    edges: Sequence[datetime],
    store: PredictionStore | None = None,
    predictions: Path | None = None,
    feedback: Path | None = None,
    sample: int = SAMPLE,
    cache: DriftCache | None = None,
) -> Timeline:
    """The windows between consecutive `edges`, read from `store` (else the files under
    `predictions`, and `feedback` when given); with `cache`, the drift of every window but the
    last (in progress) is kept there and taken from there."""
    store = store_or_files(store, predictions, feedback)
    labels = store.read_feedback(model, since=edges[0])
    buckets = store.scan_windows(model, str(version), edges=edges, sample=sample,
                                 labelled=labels.keys())  # fmt: skip
    results, damaged = [], 0
    last = len(buckets) - 1
    for index, (since, end, bucket) in enumerate(zip(edges, edges[1:], buckets, strict=False)):
        key = (model, version, since, end)
        drift = cache.get(key) if cache is not None else None
        if drift is None:
            drift = _drift(bucket, reference)
            if cache is not None and index < last:
                cache[key] = drift
        damaged += drift.damaged
        results.append(WindowDrift(
            since=since, until=end, requests=bucket.requests, rows=drift.rows,
            inputs=drift.inputs, predictions=drift.predictions,
            performance=_performance(bucket, labels),
            estimated_accuracy=drift.estimated_accuracy, problem=drift.problem,
        ))  # fmt: skip
    return Timeline(model=model, version=version, windows=results, damaged=damaged)


def _drift(bucket: Bucket, reference: tuple[Profile, Profile]) -> SampleDrift:
    records, damaged = parse_lines(bucket.sample)
    inputs, outputs = _columns(records)
    rows = len(next(iter(inputs.values()))) if inputs else 0
    input_drift = output_drift = None
    problem = ""
    if rows:
        try:
            input_drift = input_drift_of(reference[0], inputs)
            if outputs:
                output_drift = input_drift_of(reference[1], outputs)
        except ModelyardError as error:  # the traffic does not match the reference's columns
            problem = str(error)
    estimate = estimated_accuracy(outputs) if outputs else None
    return SampleDrift(rows, input_drift, output_drift, estimate, problem, damaged)


def _columns(
    records: list[dict[str, Any]],
) -> tuple[dict[str, np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]]]:
    """`window_columns` without an array per value: lists are joined, then made arrays once."""
    parts: tuple[dict[str, list[Any]], dict[str, list[Any]]] = ({}, {})
    for record in records:
        for side, key in zip(parts, ("inputs", "outputs"), strict=True):
            for name, values in record.get(key, {}).items():
                column = side.setdefault(name, [])
                if isinstance(values, list):
                    column.extend(values)
                else:
                    column.append(values)
    try:
        return flat_columns({k: log_array(v) for k, v in parts[0].items()}), flat_columns(
            {k: log_array(v) for k, v in parts[1].items()}
        )
    except ValueError:  # ragged rows: the general path says which
        inputs, outputs, _ = window_columns(records)
        return inputs, outputs


def input_drift_of(reference: Profile, inputs: dict[str, np.ndarray[Any, Any]]) -> DriftReport:
    """`detect_drift` of a window's columns (inputs or outputs) with the default tests. When
    every column is numeric and the reference kept all its values, KS runs on all columns at
    once, its p-value from the limiting Kolmogorov distribution (one SciPy call, where a
    p-value per column costs milliseconds: a day of windows would take seconds); the statistic
    is exact."""
    test = BUILTIN_TESTS["numeric", "ks"]
    numeric = {n: c for n, c in reference.columns.items() if isinstance(c, NumericColumn)}
    if len(numeric) < len(reference.columns) or not all(
        c.valid <= c.reservoir.values.size and (name not in inputs or _all_numbers(inputs[name]))
        for name, c in numeric.items()
    ):
        window = profile(inputs, reference=reference)
        testable = testable_columns(reference, window)
        if not testable.columns:
            raise InvalidInput("no input column has values of the reference's kind in the traffic")
        return detect_drift(testable, window)
    statistics, sizes = [], []
    for name, column in numeric.items():
        current = _numeric_values(name, inputs)
        statistics.append(_ks_statistic(np.sort(column.reservoir.values), current))
        sizes.append(column.valid * len(current) / (column.valid + len(current)))
    stats = require("scipy.stats", extra="monitor")
    p_values = stats.kstwobign.sf(np.array(statistics) * np.sqrt(np.array(sizes)))
    outcomes = tuple(
        ColumnDrift(column=name, kind="numeric", test=test.name, score=float(score),
                    p_value=float(p), threshold=test.threshold,
                    drifted=test.fires(float(score), float(p), test.threshold))
        for name, score, p in zip(reference.columns, statistics, p_values, strict=True)
    )  # fmt: skip
    share = sum(outcome.drifted for outcome in outcomes) / len(outcomes)
    return DriftReport(columns=outcomes, share=share, share_threshold=SHARE, drifted=share >= SHARE)


def _all_numbers(values: np.ndarray[Any, Any]) -> bool:
    """Whether the fast path can test `values`: numbers, and not all of them null."""
    return values.dtype.kind in "iuf" and not np.isnan(values).all()


def _numeric_values(name: str, inputs: dict[str, np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    if name not in inputs:
        raise InvalidInput(
            f"column {name!r} is in the reference profile but missing from the traffic"
        )
    try:
        values = inputs[name].astype(np.float64)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"column {name!r} is numeric in the reference but not in the traffic"
        ) from None
    values = np.sort(values[~np.isnan(values)])
    if not len(values):
        raise InvalidInput(f"column {name!r} has no non-null values in the traffic")
    return values


def _ks_statistic(first: np.ndarray[Any, Any], second: np.ndarray[Any, Any]) -> float:
    """The two-sample KS statistic of two sorted samples: the largest gap between their CDFs."""
    pooled = np.concatenate([first, second])
    gap = (np.searchsorted(first, pooled, side="right") / len(first)
           - np.searchsorted(second, pooled, side="right") / len(second))  # fmt: skip
    return float(np.max(np.abs(gap)))


def _performance(bucket: Bucket, labels: dict[str, object]) -> Performance | None:
    if not bucket.labelled:
        return None
    records = parse_outputs(bucket.labelled)
    outputs = records[0]["outputs"] if records else {}
    if not outputs:
        return None
    predicted, truth = labelled_rows(records, labels, next(iter(outputs)))
    if not len(truth):
        return None
    try:
        return performance(predicted, truth)
    except (ValueError, TypeError):  # labels of another kind than the predictions
        return None
