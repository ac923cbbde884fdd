"""Drift and performance per segment: a window's rows grouped by the value of one input column
(a country, a plan), since a shift in one segment is diluted in the whole window.

Each segment's rows are tested against the whole reference (it is stored as one profile), with
the segment column itself left out (constant within a segment). A segment whose population
differs from the whole by nature therefore reads as drifted even when nothing changed: compare it
with its own earlier windows before acting on it.

The rows are grouped once (one factorisation, one stable sort); each segment is then a slice:

- a string, boolean or categorical column: one segment per value, the `MAX_SEGMENTS` largest,
  the rest folded into `(other)`; missing values are the `(missing)` segment;
- a numeric column: one segment per distinct value when there are at most `MAX_SEGMENTS`,
  else `QUANTILE_BINS` bins between the reference's deciles (`< 12.5`, `[12.5, 20)`, …,
  `>= 87`), so the bins stay the same from one window to the next;
- a segment of fewer than `MIN_ROWS` rows is listed, marked "too few rows", and not tested.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from modelyard._imports import require
from modelyard.errors import InvalidInput
from modelyard.monitoring._columns import Column, NumericColumn
from modelyard.monitoring._drift import DriftReport, detect_drift, testable_columns
from modelyard.monitoring._feedback import labelled_rows
from modelyard.monitoring._performance import Performance, performance
from modelyard.monitoring._profile import Profile, profile

MAX_SEGMENTS = 20
"""Segments shown at most (the largest); the rows of the others are tested together."""
MIN_ROWS = 50
"""Rows a segment needs to be tested for drift."""
QUANTILE_BINS = 10
"""Bins of a numeric segment column with more than `MAX_SEGMENTS` distinct values."""
OTHER = "(other)"
MISSING = "(missing)"

Array = np.ndarray[Any, Any]
Columns = Mapping[str, Array]
IntArray = npt.NDArray[np.intp]


class SegmentReport(BaseModel):
    """The window's rows whose `column` is `value`, next to the whole reference."""

    model_config = ConfigDict(frozen=True)

    column: str
    value: str = Field(description='the value, a numeric bin, "(other)" or "(missing)"')
    requests: int
    rows: int
    inputs: DriftReport | None = Field(default=None, description="None when not tested")
    predictions: DriftReport | None = None
    performance: Performance | None = None
    estimated_accuracy: float | None = None
    note: str | None = Field(default=None, description="why the segment was not tested")

    HEADERS: ClassVar[tuple[str, ...]] = (
        "segment", "rows", "requests", "drift share", "drifted columns", "accuracy",
    )  # fmt: skip
    """The headers of `summary`'s cells."""

    @property
    def drifted(self) -> bool:
        """Whether the segment's inputs (or predictions) drifted."""
        return any(r is not None and r.drifted for r in (self.inputs, self.predictions))

    def summary(self) -> tuple[str, int, int, str, str, str]:
        """Segment, rows, requests, input drift share (or why untested), drifted columns and
        accuracy (measured from feedback, else `~` estimated), as the report tables show."""
        drifted = [c.column for c in self.inputs.columns if c.drifted] if self.inputs else []
        columns = ", ".join(drifted[:3]) + (f" +{len(drifted) - 3}" if len(drifted) > 3 else "")
        share = self.note or ("-" if self.inputs is None else f"{self.inputs.share:.0%}")
        if self.inputs is not None and self.inputs.drifted:
            share += " DRIFTED"
        return (self.value, self.rows, self.requests, share, columns, self._accuracy())

    def _accuracy(self) -> str:
        metrics = self.performance.metrics if self.performance is not None else {}
        if "accuracy" in metrics:
            return f"{metrics['accuracy']:.3g}"
        if "rmse" in metrics:
            return f"rmse {metrics['rmse']:.3g}"
        return "-" if self.estimated_accuracy is None else f"~{self.estimated_accuracy:.3g}"


def check_segment(column: str, reference: Profile) -> None:
    """`InvalidInput` naming the input columns when `column` is not one of them."""
    if column in reference.columns:
        return
    names = list(reference.columns)
    shown = ", ".join(names[:30]) + (f", … ({len(names)} in all)" if len(names) > 30 else "")
    raise InvalidInput(
        f"segment column {column!r} is not an input column of the model; its input columns "
        f"are {shown} (a 2-D input x is split into x[0], x[1], …)"
    )


def segment_reports(
    column: str,
    *,
    reference: tuple[Profile, Profile],
    inputs: Columns,
    outputs: Columns,
    records: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Any],
) -> tuple[SegmentReport, ...]:
    """Drift, performance and estimated accuracy of each segment of the window's rows by the
    value of input `column` (a flat name; `check_segment` first)."""
    check_segment(column, reference[0])
    if column not in inputs:
        raise InvalidInput(f"segment column {column!r} is not in the window's inputs")
    names, codes = _group(inputs[column], reference[0].columns[column])
    order = np.argsort(codes.astype(np.int16), kind="stable")  # a radix sort: one pass
    bounds = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(names)))])
    requests = _requests(_record_of_rows(records, column, len(codes)), order, bounds)
    performed = _performed(records, labels, outputs, column, codes)
    references = (_without(reference[0], column), reference[1])
    outputs = outputs if all(len(v) == len(codes) for v in outputs.values()) else {}
    reports = []
    for index, name in enumerate(names):
        rows = order[bounds[index] : bounds[index + 1]]
        if not len(rows):
            continue
        report = SegmentReport(
            column=column, value=name, requests=requests[index], rows=len(rows),
            performance=performed.get(index),
        )  # fmt: skip
        if len(rows) < MIN_ROWS:
            report = report.model_copy(update={"note": f"too few rows (< {MIN_ROWS})"})
        else:
            report = _tested(report, rows, references, inputs, outputs)
        reports.append(report)
    return tuple(reports)


def _tested(
    report: SegmentReport,
    rows: IntArray,
    reference: tuple[Profile | None, Profile],
    inputs: Columns,
    outputs: Columns,
) -> SegmentReport:
    from modelyard.monitoring._reports import estimated_accuracy  # it imports this module

    sliced = {name: values[rows] for name, values in outputs.items()}
    update: dict[str, Any] = {"estimated_accuracy": estimated_accuracy(sliced)}
    try:
        if reference[0] is not None:
            update["inputs"] = _drift(reference[0], inputs, rows)
        if sliced:
            update["predictions"] = _drift(reference[1], outputs, rows)
    except InvalidInput as error:  # e.g. a column with no value in this segment
        update["note"] = f"not tested: {error}"
    return report.model_copy(update=update)


def _drift(reference: Profile, columns: Columns, rows: IntArray) -> DriftReport | None:
    sliced = {name: columns[name][rows] for name in reference.columns if name in columns}
    current = profile(sliced, reference=reference)
    testable = testable_columns(reference, current)  # as for the whole window
    return detect_drift(testable, current) if testable.columns else None


def _without(reference: Profile, column: str) -> Profile | None:
    kept = {name: summary for name, summary in reference.columns.items() if name != column}
    return Profile(kept) if kept else None


def _group(values: Array, reference: Column) -> tuple[list[str], IntArray]:
    """Segment names and each row's segment index."""
    pandas = require("pandas", extra="monitor")
    if reference.kind == "numeric" and values.dtype.kind == "O":
        # a logged column with a null (JSON null is None) is an object array of numbers
        values = pandas.to_numeric(pandas.Series(values), errors="coerce").to_numpy(np.float64)
    numeric = values.dtype.kind in "iuf"
    try:
        codes, uniques = pandas.factorize(values, use_na_sentinel=True)
    except TypeError:
        raise InvalidInput("the segment column holds values that are not scalars") from None
    if numeric and len(uniques) > MAX_SEGMENTS:
        return _bins(values.astype(np.float64), reference)
    names = [_name(value) for value in uniques]
    counts = np.bincount(codes + 1, minlength=len(names) + 1)  # the slot 0 counts the missing
    ranked = sorted(range(len(names)), key=lambda i: (-counts[i + 1], names[i]))
    if numeric:
        ranked.sort(key=lambda i: float(uniques[i]))
    kept, folded = ranked[:MAX_SEGMENTS], ranked[MAX_SEGMENTS:]
    mapping = np.zeros(len(names) + 1, dtype=np.intp)
    mapping[[i + 1 for i in kept]] = np.arange(len(kept))
    segments = [names[i] for i in kept]
    for extra, members in ((OTHER, [i + 1 for i in folded]), (MISSING, [0] if counts[0] else [])):
        if members:
            mapping[members] = len(segments)
            segments.append(extra)
    return segments, mapping[codes + 1]


def _bins(values: npt.NDArray[np.float64], reference: Column) -> tuple[list[str], IntArray]:
    ranks = np.linspace(0, 1, QUANTILE_BINS + 1)[1:-1]
    if isinstance(reference, NumericColumn) and reference.sketch.count:
        edges = reference.sketch.quantiles(ranks)
    else:
        edges = np.nanquantile(values, ranks)
    edges = np.unique(edges[np.isfinite(edges)])
    text = [f"{edge:.4g}" for edge in edges]
    names = [f"< {text[0]}"] if len(text) else ["all"]
    names += [f"[{low}, {high})" for low, high in zip(text, text[1:], strict=False)]
    names += [f">= {text[-1]}"] if len(text) else []
    codes = np.searchsorted(edges, values, side="right").astype(np.intp)
    missing = np.isnan(values)
    if missing.any():
        codes[missing] = len(names)
        names.append(MISSING)
    return names, codes


def _name(value: object) -> str:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _record_of_rows(
    records: Sequence[Mapping[str, Any]], column: str, rows: int
) -> IntArray | None:
    """The index of the record each row came from (None when the counts do not add up)."""
    counts = _row_counts(records, column)
    if counts.sum() != rows:
        return None
    return np.repeat(np.arange(len(records), dtype=np.intp), counts)


def _row_counts(records: Sequence[Mapping[str, Any]], column: str) -> IntArray:
    base = column.partition("[")[0]
    counts = np.zeros(len(records), dtype=np.intp)
    for index, record in enumerate(records):
        values = record["inputs"].get(base)
        counts[index] = len(values) if values is not None and np.ndim(values) else 0
    return counts


def _requests(record: IntArray | None, order: IntArray, bounds: IntArray) -> list[int]:
    """Distinct requests among each segment's rows: rows are in record order within a segment,
    so a request starts wherever the record index changes (or a segment starts)."""
    segments = len(bounds) - 1
    if record is None or not len(order):
        return [0] * segments
    ordered = record[order]
    starts = np.ones(len(ordered), dtype=np.intp)
    starts[1:] = ordered[1:] != ordered[:-1]
    starts[bounds[:-1][bounds[:-1] < len(ordered)]] = 1
    return [int(starts[bounds[i] : bounds[i + 1]].sum()) for i in range(segments)]


def _performed(
    records: Sequence[Mapping[str, Any]],
    labels: Mapping[str, Any],
    outputs: Columns,
    column: str,
    codes: IntArray,
) -> dict[int, Performance]:
    """Performance by segment index, from the labelled rows (joined as the report joins them)."""
    if not labels or not outputs:
        return {}
    output = next(iter(outputs)).split("[")[0]
    predicted = _stacked(outputs, output)
    counts = _row_counts(records, column)
    if predicted is None or len(predicted) != len(codes) or counts.sum() != len(codes):
        return {}
    starts = np.cumsum(counts) - counts
    # The same join run on row numbers gives which rows the labels belong to.
    numbered = [
        {"id": record.get("id"), "outputs": {output: np.arange(start, start + count)}}
        for record, start, count in zip(records, starts, counts, strict=True)
        if output in record["outputs"] and len(record["outputs"][output]) == count
    ]
    rows, truth = labelled_rows(numbered, dict(labels), output)
    rows = rows.astype(np.intp)
    found: dict[int, Performance] = {}
    labelled_codes = codes[rows]
    for index in np.unique(labelled_codes):
        mask = labelled_codes == index
        found[int(index)] = performance(predicted[rows[mask]], truth[mask])
    return found


def _stacked(outputs: Columns, output: str) -> Array | None:
    """The output's rows as the model answered them: a column, or the columns `output[i]`."""
    if output in outputs:
        return outputs[output]
    parts = [values for name, values in outputs.items() if name.startswith(f"{output}[")]
    return np.column_stack(parts) if parts else None
