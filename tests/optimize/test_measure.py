"""Measurement pieces: rows for timing, labels and scores from any answer, metrics, reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.optimize import METRICS, Measurement, OptimizeReport
from modelyard.optimize._measure import labels_of, model_bytes, scores_of, take_rows


def test_take_rows_repeats_a_small_set() -> None:
    array = np.arange(6).reshape(3, 2)
    assert take_rows(array, 2).tolist() == [[0, 1], [2, 3]]
    assert take_rows(array, 7).shape == (7, 2)
    frame = pd.DataFrame({"a": [1, 2], "b": [3, 4]})
    assert take_rows(frame, 1).to_dict("list") == {"a": [1], "b": [3]}
    grown = take_rows(frame, 5)
    assert list(grown.columns) == ["a", "b"] and grown["a"].tolist() == [1, 2, 1, 2, 1]
    assert take_rows({"x": [1, 2, 3]}, 4)["x"].tolist() == [1, 2, 3, 1]


def test_labels_and_scores_from_any_answer() -> None:
    logits = np.array([[2.0, -1.0], [-3.0, 1.0]])
    assert labels_of(logits).tolist() == [0, 1]
    assert labels_of({"label": np.array([1, 0]), "probabilities": logits}).tolist() == [1, 0]
    assert labels_of((np.array([[3], [4]]), np.zeros(2))).tolist() == [3, 4]
    assert labels_of({"other": np.array([5])}).tolist() == [5]
    scores = scores_of(logits)
    assert scores == pytest.approx([1 / (1 + np.exp(3)), 1 / (1 + np.exp(-4))])
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert scores_of({"label": [1, 0], "probabilities": probabilities}).tolist() == [0.8, 0.4]
    assert scores_of(np.array([[0.2, 0.3, 0.5]])).shape == (1, 3)
    assert scores_of(np.array([0.1, 0.9])).tolist() == [0.1, 0.9]


def test_metrics() -> None:
    y = np.array([0, 1, 1, 0])
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    accuracy, higher = METRICS["accuracy"]
    assert accuracy(y, probabilities) == 0.75 and higher
    assert METRICS["f1"][0](y, probabilities) == pytest.approx((0.8 + 2 / 3) / 2)
    assert METRICS["auc"][0](y, probabilities) == 1.0
    truth = np.array([1.0, 2.0, 3.0])
    answer = np.array([[1.5], [2.0], [2.5]])
    assert METRICS["rmse"][0](truth, answer) == pytest.approx(np.sqrt(0.5 / 3))
    assert METRICS["mae"][0](truth, answer) == pytest.approx(1 / 3)
    assert METRICS["r2"][0](truth, answer) == pytest.approx(1 - 0.5 / 2)
    assert not METRICS["rmse"][1]


def _report(before: float, after: float, *, higher: bool = True) -> OptimizeReport:
    def figures(metric: float, size: int) -> Measurement:
        return Measurement(size_bytes=size, p50_batch1_ms=1.0, p50_batch64_ms=4.0, metric=metric)

    return OptimizeReport(
        step="quantize", settings={}, parent="m:1", metric="m", higher_is_better=higher,
        tolerance=0.01, rows=10, before=figures(before, 4 << 20), after=figures(after, 500),
    )  # fmt: skip


def test_report_verdicts() -> None:
    assert _report(0.90, 0.895).accepted  # -0.56%
    assert not _report(0.90, 0.88).accepted  # -2.2%
    assert _report(2.0, 2.01, higher=False).metric_change == pytest.approx(-0.005)
    assert not _report(2.0, 2.1, higher=False).accepted
    assert _report(0.0, 0.0).accepted and _report(0.0, -0.5).metric_change == -0.5
    table = _report(0.9, 0.9).table()
    assert "4.0 MiB" in table and "500 B" in table and "defaults" in table


def test_model_bytes_leaves_out_references(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    (folder / "model.bin").write_bytes(b"x" * 10)
    (folder / "monitoring").mkdir()
    (folder / "monitoring" / "reference.json").write_bytes(b"y" * 100)
    assert model_bytes(folder) == 10
