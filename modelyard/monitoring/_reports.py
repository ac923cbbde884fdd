"""A monitoring report for a served version over a time window: drift of its inputs and of its
predictions against the reference stored at registration."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from modelyard import _html
from modelyard.errors import NotFound
from modelyard.monitoring._drift import DriftReport, detect_drift
from modelyard.monitoring._feedback import labelled_rows
from modelyard.monitoring._log_store import PredictionStore, store_or_files
from modelyard.monitoring._performance import Performance, performance
from modelyard.monitoring._profile import Profile, profile
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
        if self.performance is not None:
            facts += [(k, f"{v:.4g}") for k, v in self.performance.metrics.items()]
        return _html.card(
            f"{self.model}:{self.version}",
            _html.table(None, facts, marked=[3] if self.drifted else []),
            *(
                _html.section(title, _drift_table(report))
                for title, report in (("inputs", self.inputs), ("predictions", self.predictions))
            ),
            note="monitor report",
        )


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
) -> tuple[MonitorReport, Profile | None, Profile | None]:
    """The report on the requests logged for `model` `version` in the `window` before `until`
    (now) against the reference in the version's `folder`, with the reference's and the
    window's input profiles (for plots). The log is read from `store`, else from the files
    under `predictions` (and the labels under `feedback`, when given)."""
    store = store_or_files(store, predictions, feedback)
    reference = read_reference(folder)
    if reference is None:
        raise NotFound(
            f"{model}:{version} has no reference profile: log it with reference_data= "
            "(a training or validation sample)"
        )
    end = until or datetime.now(UTC)
    start = end - window
    # Read once: the same records give the window's columns and, with feedback, performance.
    records = list(store.read_records(model, str(version), since=start, until=end))
    inputs, outputs, requests = window_columns(records)
    rows = len(next(iter(inputs.values()))) if inputs else 0
    input_drift = output_drift = current = None
    reference_inputs, reference_outputs = reference
    if rows:
        current = profile(inputs, reference=reference_inputs)
        input_drift = detect_drift(reference_inputs, current)
        if outputs:
            output_drift = detect_drift(
                reference_outputs, profile(outputs, reference=reference_outputs)
            )
    report = MonitorReport(
        model=model, version=version, since=start, until=end, requests=requests, rows=rows,
        inputs=input_drift, predictions=output_drift,
        performance=_performance(records, store, model, start, outputs),
        estimated_accuracy=estimated_accuracy(outputs),
        replicas=store.replicas(model, str(version), since=start, until=end) if requests else None,
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
    records: list[dict[str, Any]],
    store: PredictionStore,
    model: str,
    start: datetime,
    outputs: Mapping[str, object],
) -> Performance | None:
    if not outputs:
        return None
    labels = store.read_feedback(model, since=start)
    if not labels:
        return None
    first_output = next(iter(outputs)).split("[")[0]
    predicted, truth = labelled_rows(records, labels, first_output)
    return performance(predicted, truth) if len(truth) else None
