"""What an optimization step cost and bought: size on disk, latency, and the task metric.

Parent and child are timed in the same process, alternating in rounds, so that a burst of other
work on the machine slows both rather than flattering one; the figure kept is the median call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from modelyard.errors import ConfigurationError, InvalidInput
from modelyard.flavors import LoadedModel

# Folders a version may hold that are not the model (monitoring references, explanations).
NOT_MODEL = ("monitoring", "explain", "optimize")
# Metric name -> (function of true values and the model's answer, whether higher is better).
Metric = Callable[[np.ndarray, Any], float]


class Measurement(BaseModel):
    """One model's figures on the evaluation set."""

    model_config = ConfigDict(frozen=True)

    size_bytes: int
    p50_batch1_ms: float
    p50_batch64_ms: float
    metric: float


def model_bytes(folder: Path) -> int:
    """Bytes of the model's own files (its example and metadata included, references not)."""
    total = 0
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_file() and relative.parts[0] not in NOT_MODEL:
            total += path.stat().st_size
    return total


def latencies(
    models: list[LoadedModel], inputs: Any, *, batch: int, rounds: int = 5, calls: int = 20
) -> list[float]:
    """Median milliseconds per `predict` of `batch` rows for each model, timed in alternating
    rounds after a warm-up call each."""
    rows = take_rows(inputs, batch)
    times: list[list[float]] = [[] for _ in models]
    for model in models:
        model.predict(rows)
    for _ in range(rounds):
        for index, model in enumerate(models):
            for _ in range(calls):
                start = time.perf_counter()
                model.predict(rows)
                times[index].append(time.perf_counter() - start)
    return [float(np.median(values)) * 1e3 for values in times]


def take_rows(inputs: Any, count: int) -> Any:
    """The first `count` rows of an array, a DataFrame or a dict of arrays (repeated when the
    evaluation set is smaller)."""
    if isinstance(inputs, dict):
        return {key: _rows(np.asarray(value), count) for key, value in inputs.items()}
    if hasattr(inputs, "iloc"):
        repeats = -(-count // max(len(inputs), 1))
        frame = inputs if repeats <= 1 else type(inputs)(np.tile(inputs.to_numpy(), (repeats, 1)))
        if repeats > 1:
            frame.columns = inputs.columns
        return frame.iloc[:count]
    return _rows(np.asarray(inputs), count)


def _rows(array: np.ndarray, count: int) -> np.ndarray:
    if len(array) == 0:
        raise InvalidInput("the evaluation set has no rows")
    repeats = -(-count // len(array))
    if repeats > 1:
        array = np.concatenate([array] * repeats)
    return array[:count]


# metrics ------------------------------------------------------------------------------------------


def labels_of(output: Any) -> np.ndarray:
    """Class labels from a model's answer: a `label` output, the argmax of scores, or the
    answer itself."""
    output = _main_output(output, prefer=("label", "labels", "output_label"))
    array = np.asarray(output)
    if array.ndim == 2 and array.shape[1] > 1 and array.dtype.kind == "f":
        return np.asarray(array.argmax(axis=1))
    if array.ndim == 2 and array.shape[1] == 1:
        return np.asarray(array[:, 0])
    return array


def scores_of(output: Any) -> np.ndarray:
    """Positive-class (or per-class) scores from a model's answer, for AUC."""
    if isinstance(output, dict) and "probabilities" in output:
        array = np.asarray(output["probabilities"])
    else:
        array = np.asarray(_main_output(output, prefer=()))
    if array.ndim == 2 and array.dtype.kind == "f":
        if (array < 0).any() or not np.allclose(array.sum(axis=1), 1, atol=1e-3):  # logits
            shifted = np.exp(array - array.max(axis=1, keepdims=True))
            array = shifted / shifted.sum(axis=1, keepdims=True)
        return array[:, 1] if array.shape[1] == 2 else array
    return array


def _main_output(output: Any, *, prefer: tuple[str, ...]) -> Any:
    if isinstance(output, dict):
        for key in prefer:
            if key in output:
                return output[key]
        return next(iter(output.values()))
    if isinstance(output, tuple | list) and output and not np.isscalar(output[0]):
        return output[0]
    return output


def _accuracy(y: np.ndarray, output: Any) -> float:
    return float(np.mean(labels_of(output) == y))


def _f1(y: np.ndarray, output: Any) -> float:
    from modelyard.monitoring import classification_metrics  # monitoring loads only if asked

    labels = labels_of(output)
    return classification_metrics(labels.astype(str), np.asarray(y).astype(str))["f1_macro"]


def _auc(y: np.ndarray, output: Any) -> float:
    from modelyard.monitoring import auc

    scores = scores_of(output)
    if scores.ndim != 1:
        raise InvalidInput("auc is measured for binary classifiers; use accuracy or f1")
    return auc(scores, np.asarray(y).astype(int))


def _values(output: Any) -> np.ndarray:
    return np.asarray(_main_output(output, prefer=("variable", "predictions")), dtype=np.float64)


def _rmse(y: np.ndarray, output: Any) -> float:
    return float(np.sqrt(np.mean((_values(output).reshape(y.shape) - y) ** 2)))


def _mae(y: np.ndarray, output: Any) -> float:
    return float(np.mean(np.abs(_values(output).reshape(y.shape) - y)))


def _r2(y: np.ndarray, output: Any) -> float:
    residual = np.sum((_values(output).reshape(y.shape) - y) ** 2)
    return float(1 - residual / np.sum((y - y.mean()) ** 2))


METRICS: dict[str, tuple[Metric, bool]] = {
    "accuracy": (_accuracy, True),
    "f1": (_f1, True),
    "auc": (_auc, True),
    "r2": (_r2, True),
    "rmse": (_rmse, False),
    "mae": (_mae, False),
}


def metric_named(metric: str | Metric, higher_is_better: bool | None) -> tuple[str, Metric, bool]:
    """(name, function, higher is better) for a metric name or a caller's function."""
    if callable(metric):
        name = getattr(metric, "__name__", "metric")
        return name, metric, True if higher_is_better is None else higher_is_better
    if metric not in METRICS:
        raise ConfigurationError(
            f"unknown metric {metric!r}; use one of {', '.join(METRICS)} or pass a function "
            "of (y_true, prediction)"
        )
    function, higher = METRICS[metric]
    return metric, function, higher if higher_is_better is None else higher_is_better


def evaluate(model: LoadedModel, inputs: Any, truth: np.ndarray, metric: Metric) -> float:
    """The metric of the model's answers for `inputs`."""
    try:
        return float(metric(truth, model.predict(inputs)))
    except (ValueError, TypeError, IndexError) as error:
        raise InvalidInput(f"cannot score the model on the evaluation set: {error}") from None


def measure(
    models: list[LoadedModel], inputs: Any, truth: Any, metric: Metric
) -> list[Measurement]:
    """Size, p50 latency at batch 1 and 64, and the metric, for each model (same data)."""
    truth = np.asarray(truth)
    if len(truth) != _length(inputs):
        raise InvalidInput(
            f"the evaluation set has {_length(inputs)} rows of inputs but {len(truth)} labels"
        )
    single = latencies(models, inputs, batch=1)
    batched = latencies(models, inputs, batch=64, calls=5)
    return [
        Measurement(
            size_bytes=model_bytes(model.folder),
            p50_batch1_ms=one,
            p50_batch64_ms=many,
            metric=evaluate(model, inputs, truth, metric),
        )  # fmt: skip
        for model, one, many in zip(models, single, batched, strict=True)
    ]


def _length(inputs: Any) -> int:
    if isinstance(inputs, dict):
        return len(next(iter(inputs.values())))
    return len(inputs)
