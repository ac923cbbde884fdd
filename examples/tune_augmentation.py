"""Tune a digits classifier together with its data augmentation.

    modelyard tune examples/tune_augmentation.py --trials 20 --jobs 2 --alias best

The training set is made imbalanced on purpose (digits 0-4 keep a fifth of their images), and
the search space mixes the model's hyper-parameters (alpha, loss, epochs) with augmentation
settings: gaussian noise on the pixels, mixup strength (the Beta(a, a) that mixes pairs of
images and their labels), and how to rebalance the classes. Each trial reports its balanced
accuracy per epoch, so the pruner can stop a poor one early; the best model is registered as
`digits-augmented`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.metrics import balanced_accuracy_score

CLASSES = np.arange(10)

_x, _y = load_digits(return_X_y=True)
_x = (_x / 16).astype(np.float32)
_order = np.random.default_rng(0).permutation(len(_y))
x_train, y_train = _x[_order[:1200]], _y[_order[:1200]]
x_val, y_val = _x[_order[1200:]], _y[_order[1200:]]
_keep = (y_train >= 5) | (np.random.default_rng(1).random(len(y_train)) < 0.2)
x_train, y_train = x_train[_keep], y_train[_keep]

space = {
    "alpha": ("float", 1e-6, 1e-2, "log"),  # the model
    "loss": ["log_loss", "modified_huber"],
    "epochs": ("int", 3, 8),
    "noise": ("float", 0.0, 0.3),  # the data: gaussian noise, mixup, class rebalancing
    "mixup": ("float", 0.0, 0.4),
    "rebalance": ["none", "weights", "oversample"],
}

defaults = {"name": "digits-augmented", "n_trials": 12, "metric": "balanced_accuracy"}


def rebalanced(
    x: np.ndarray, y: np.ndarray, how: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The training set and a weight per row: as it is, weighted by inverse class frequency,
    or with every class oversampled to the size of the largest."""
    counts = np.bincount(y, minlength=len(CLASSES))
    if how == "weights":
        return x, y, (counts.max() / counts)[y]
    if how == "oversample":
        rows = np.concatenate([rng.choice(np.flatnonzero(y == c), counts.max()) for c in CLASSES])
        return x[rows], y[rows], np.ones(len(rows))
    return x, y, np.ones(len(y))


def augmented(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, params: dict[str, Any], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's data: noisy pixels, then mixup as two weighted rows per mixed image (the
    mixup loss of a linear model, with hard labels)."""
    noisy = (x + rng.normal(0, params["noise"], x.shape)).astype(np.float32)
    if params["mixup"] <= 0:
        return noisy, y, w
    share = rng.beta(params["mixup"], params["mixup"], len(y)).astype(np.float32)
    pair = rng.permutation(len(y))
    mixed = share[:, None] * noisy + (1 - share[:, None]) * noisy[pair]
    return (
        np.concatenate([mixed, mixed]),
        np.concatenate([y, y[pair]]),
        np.concatenate([w * share, w[pair] * (1 - share)]),
    )


def objective(params: dict[str, Any], trial: Any) -> tuple[float, SGDClassifier]:
    """Train epoch by epoch on freshly augmented data; report balanced accuracy each epoch."""
    rng = np.random.default_rng(trial.number)
    model = SGDClassifier(alpha=params["alpha"], loss=params["loss"], random_state=0)
    x, y, w = rebalanced(x_train, y_train, params["rebalance"], rng)
    score = 0.0
    for epoch in range(params["epochs"]):
        xs, ys, ws = augmented(x, y, w, params, rng)
        model.partial_fit(xs, ys, classes=CLASSES, sample_weight=ws)
        score = float(balanced_accuracy_score(y_val, model.predict(x_val)))
        trial.report(score, step=epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return score, model
