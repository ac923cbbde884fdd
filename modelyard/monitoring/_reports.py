"""A monitoring report for a served version over a time window: drift of its inputs and of its
predictions against the reference stored at registration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from modelyard import _html
from modelyard.errors import NotFound
from modelyard.monitoring._drift import DriftReport, detect_drift, testable_columns
from modelyard.monitoring._embeddings import EmbeddingDrift, embedding_drift, read_embeddings
from modelyard.monitoring._feedback import labelled_rows
from modelyard.monitoring._log_lines import UnreadableLines
from modelyard.monitoring._log_store import PredictionStore, store_or_files
from modelyard.monitoring._multivariate import (
    MultivariateDrift,
    multivariate_drift,
    read_multivariate,
)
from modelyard.monitoring._performance import Performance, performance
from modelyard.monitoring._profile import Profile, profile
from modelyard.monitoring._quality import QualityReport, data_quality
from modelyard.monitoring._segments import SegmentReport, check_segment, segment_reports
from modelyard.monitoring._text import TextDrift, read_text, text_drift
from modelyard.monitoring._windows import read_reference, window_columns


class MonitorReport(BaseModel):
    """What a window of traffic looked like next to the version's reference."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    since: datetime
    until: datetime
    requests: int
    rows: int
    inputs: DriftReport | None
    predictions: DriftReport | None
    performance: Performance | None = None
    estimated_accuracy: float | None = None
    replicas: int | None = None
    """How many serving replicas logged the window's records (None: the log does not say)."""
    quality: QualityReport | None = None
    """Data quality of the window's inputs against the reference (None: no rows)."""
    segments: tuple[SegmentReport, ...] = ()
    """Drift and performance per value of the `segment=` column (empty: not asked)."""
    unreadable_lines: int = 0
    """Log lines (predictions, feedback) skipped because they hold no valid record: a record
    cut short by a full disk, garbage bytes. The window is reported without them."""
    embeddings: tuple[EmbeddingDrift, ...] = ()
    """The MMD test of each embedding input or output (numeric, 8 or more wide)."""
    text: tuple[TextDrift, ...] = ()
    """The descriptor tests of each text input or output column."""
    multivariate: MultivariateDrift | None = None
    """Drift of the inputs' joint distribution: PCA reconstruction error, and the domain
    classifier when asked (None: no rows, or a version registered without the reference)."""

    @property
    def drifted(self) -> bool:
        """Whether the inputs (or the predictions) drifted."""
        return any(r is not None and r.drifted for r in (self.inputs, self.predictions))

    def _repr_html_(self) -> str:
        reports = [report for report in (self.inputs, self.predictions) if report is not None]
        some = any(column.drifted for report in reports for column in report.columns)
        verdict = "drift" if self.drifted else "some columns drifted" if some else "no drift"
        facts = [
            ("window", f"{self.since:%Y-%m-%d %H:%M} – {self.until:%Y-%m-%d %H:%M}"),
            ("requests", self.requests),
            ("rows", self.rows),
            ("verdict", verdict),
        ]
        if self.replicas is not None:
            facts.append(("replicas", self.replicas))
        if self.unreadable_lines:
            facts.append(("unreadable log lines (skipped)", self.unreadable_lines))
        if self.performance is not None:
            facts += [(k, f"{v:.4g}") for k, v in self.performance.metrics.items()]
        return _html.card(
            f"{self.model}:{self.version}",
            _html.table(None, facts, marked=[3] if self.drifted else []),
            *(
                _html.section(title, _drift_table(report))
                for title, report in (("inputs", self.inputs), ("predictions", self.predictions))
            ),
            _html.section("data quality", _quality_html(self.quality)),
            _html.section(
                "segments",
                _html.table(
                    SegmentReport.HEADERS,
                    [segment.summary() for segment in self.segments],
                    marked=[i for i, segment in enumerate(self.segments) if segment.drifted],
                ),
            ),  # fmt: skip
            _html.section("embeddings", _samples_table(self.embeddings)),
            _html.section("text", _samples_table(self.text)),
            _html.section("multivariate", _multivariate_html(self.multivariate)),
            note="monitor report",
        )


def _multivariate_html(drift: MultivariateDrift | None) -> str:
    if drift is None:
        return ""
    headers, rows = drift.table()
    return _html.table(headers, rows, marked=[0] if drift.drifted else []) + _html.escape(
        drift.verdict()
    )


def _quality_html(quality: QualityReport | None) -> str:
    if quality is None:
        return ""
    headers, rows = quality.table()
    return _html.table(headers, rows, marked=range(len(rows))) + _html.escape(quality.verdict())


def _samples_table(drifts: Sequence[EmbeddingDrift | TextDrift]) -> str:
    if not drifts:
        return ""
    marked = [index for index, drift in enumerate(drifts) if drift.drifted]
    return _html.table(drifts[0].HEADERS, [drift.cells() for drift in drifts], marked=marked)


def _drift_table(report: DriftReport | None) -> str:
    if report is None:
        return ""
    rows = [
        (
            c.column,
            c.test,
            f"{c.score:.4g}",
            "-" if c.p_value is None else f"{c.p_value:.3g}",
            f"{c.threshold:.3g}",
            "drifted" if c.drifted else "ok",
        )
        for c in report.columns
    ]
    drifted = [i for i, c in enumerate(report.columns) if c.drifted]
    verdict = report.verdict()
    headers = ["column", "test", "score", "p-value", "threshold", ""]
    return _html.table(headers, rows, marked=drifted) + _html.escape(verdict)


def monitor_window(
    *,
    model: str,
    version: int,
    folder: Path,
    window: timedelta,
    until: datetime | None = None,
    store: PredictionStore | None = None,
    predictions: Path | None = None,
    feedback: Path | None = None,
    segment: str | None = None,
    domain_classifier: bool = False,
) -> tuple[MonitorReport, Profile | None, Profile | None]:
    """The report on the requests logged for `model` `version` in the `window` before `until`
    (now) against the reference in the version's `folder`, with the reference's and the
    window's input profiles (for plots). The log is read from `store`, else from the files
    under `predictions` (and the labels under `feedback`, when given). `segment` names an
    input column whose values split the window into segments, each with its own drift and
    performance (`MonitorReport.segments`). `domain_classifier` adds a classifier trained to
    tell reference rows from the window's to `MonitorReport.multivariate` (slower; needs
    scikit-learn)."""
    store = store_or_files(store, predictions, feedback)
    reference = read_reference(folder)
    if reference is None:
        raise NotFound(
            f"{model}:{version} has no reference profile: log it with reference_data= "
            "(a training or validation sample)"
        )
    if segment is not None:
        check_segment(segment, reference[0])
    end = until or datetime.now(UTC)
    start = end - window
    # Read once: the same records give the window's columns and, with feedback, performance.
    unreadable = UnreadableLines()
    records = list(store.read_records(model, str(version), since=start, until=end,
                                      unreadable=unreadable))  # fmt: skip
    inputs, outputs, requests = window_columns(records)
    rows = len(next(iter(inputs.values()))) if inputs else 0
    input_drift = output_drift = current = quality = None
    reference_inputs, reference_outputs = reference
    if rows:
        current = profile(inputs, reference=reference_inputs)
        quality = data_quality(reference_inputs, current)
        testable = testable_columns(reference_inputs, current)
        input_drift = detect_drift(testable, current) if testable.columns else None
        if outputs:
            output_drift = detect_drift(
                reference_outputs, profile(outputs, reference=reference_outputs)
            )
    # Read once, for the whole window's performance and each segment's.
    labels = store.read_feedback(model, since=start, unreadable=unreadable) if outputs else {}
    segments: tuple[SegmentReport, ...] = ()
    if segment is not None and rows:
        segments = segment_reports(segment, reference=reference, inputs=inputs, outputs=outputs,
                                   records=records, labels=labels)  # fmt: skip
    embeddings = embedding_drift(read_embeddings(folder), inputs, outputs) if rows else ()
    texts = text_drift(read_text(folder), inputs, outputs) if rows else ()
    joint = read_multivariate(folder) if rows else None
    multivariate = (
        None if joint is None
        else multivariate_drift(joint, inputs, domain_classifier=domain_classifier)
    )  # fmt: skip
    report = MonitorReport(
        model=model, version=version, since=start, until=end, requests=requests, rows=rows,
        inputs=input_drift, predictions=output_drift,
        performance=_performance(records, labels, outputs),
        estimated_accuracy=estimated_accuracy(outputs),
        replicas=store.replicas(model, str(version), since=start, until=end) if requests else None,
        quality=quality, segments=segments,
        unreadable_lines=unreadable.count,  # feedback lines included
        embeddings=embeddings, text=texts, multivariate=multivariate,
    )  # fmt: skip
    return report, reference_inputs, current


def estimated_accuracy(outputs: Mapping[str, np.ndarray[Any, Any]]) -> float | None:
    """Accuracy expected from the model's own confidence before any label arrives (as NannyML's
    CBPE estimates it): the mean, over rows, of the largest class probability. Needs an output
    of class probabilities (a model served with `method="predict_proba"`), assumed calibrated."""
    groups: dict[str, list[np.ndarray[Any, Any]]] = {}
    for name, column in outputs.items():
        base, bracket, _ = name.partition("[")
        if bracket and column.dtype.kind == "f":
            groups.setdefault(base, []).append(column)
    for columns in groups.values():
        if len(columns) < 2:
            continue
        probabilities = np.column_stack(columns)
        sums = probabilities.sum(axis=1)
        if probabilities.min() >= 0 and np.allclose(sums, 1, atol=1e-3):
            return float(probabilities.max(axis=1).mean())
    return None


def _performance(
    records: list[dict[str, Any]], labels: dict[str, Any], outputs: Mapping[str, object]
) -> Performance | None:
    if not outputs or not labels:
        return None
    first_output = next(iter(outputs)).split("[")[0]
    predicted, truth = labelled_rows(records, labels, first_output)
    return performance(predicted, truth) if len(truth) else None
