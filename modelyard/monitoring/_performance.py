"""Real performance from predictions and the labels that came back: accuracy, F1 and AUC for
classifiers, RMSE and MAE for regressors; plain NumPy, so it needs no scikit-learn."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from modelyard._imports import require


class Performance(BaseModel):
    """Metrics over the labelled rows of a window."""

    model_config = ConfigDict(frozen=True)

    task: str  # "classification" or "regression"
    rows: int
    metrics: dict[str, float]


def performance(predicted: np.ndarray[Any, Any], truth: np.ndarray[Any, Any]) -> Performance:
    """Classification metrics when predictions are labels (integers, booleans, strings) or
    class probabilities; regression metrics when they are other numbers."""
    if predicted.ndim == 2 and predicted.dtype.kind == "f":  # class probabilities
        labels = predicted.argmax(axis=1)
        metrics = classification_metrics(labels, truth.astype(labels.dtype))
        if predicted.shape[1] == 2:
            metrics["auc"] = auc(predicted[:, 1], truth.astype(int))
        return Performance(task="classification", rows=len(truth), metrics=metrics)
    if predicted.dtype.kind in "biuOUS" and truth.dtype.kind in "biuOUS":
        metrics = classification_metrics(predicted.astype(str), truth.astype(str))
        return Performance(task="classification", rows=len(truth), metrics=metrics)
    error = predicted.astype(float).reshape(-1) - truth.astype(float).reshape(-1)
    metrics = {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error)))}
    return Performance(task="regression", rows=len(truth), metrics=metrics)


def classification_metrics(
    predicted: np.ndarray[Any, Any], truth: np.ndarray[Any, Any]
) -> dict[str, float]:
    """Accuracy and macro F1 of predicted labels against the true ones."""
    f1s = []
    for label in np.unique(np.concatenate([predicted, truth])):
        true_positive = np.sum((predicted == label) & (truth == label))
        predicted_positive, actual_positive = np.sum(predicted == label), np.sum(truth == label)
        denominator = predicted_positive + actual_positive
        f1s.append(2 * true_positive / denominator if denominator else 0.0)
    return {"accuracy": float(np.mean(predicted == truth)), "f1_macro": float(np.mean(f1s))}


def auc(scores: np.ndarray[Any, Any], truth: np.ndarray[Any, Any]) -> float:
    """ROC AUC of a binary classifier's scores (truth is 0/1); NaN when one class is absent."""
    # Mann-Whitney U: the chance that a positive outranks a negative, ties counting half
    positives = int(np.sum(truth == 1))
    negatives = len(truth) - positives
    if not positives or not negatives:
        return float("nan")
    ranks = require("scipy.stats", extra="monitor").rankdata(scores)
    u = ranks[truth == 1].sum() - positives * (positives + 1) / 2
    return float(u / (positives * negatives))
