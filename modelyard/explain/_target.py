"""The model as explainers see it: its features, its class labels, the outputs to explain, and
the rule that picks one output per row when there are several."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from modelyard.errors import UnsupportedModel
from modelyard.explain._explanation import Explanation, Label
from modelyard.explain._features import Features, Matrix
from modelyard.flavors import LoadedModel

Scores = Callable[[Any], np.ndarray[Any, Any]]
"""The model's numeric output for a model input: (rows,) or (rows, outputs)."""
RowFunction = Callable[[Matrix], np.ndarray[Any, Any]]
"""The same as a function of feature rows."""


class Target:
    """One loaded model version, named `name` in messages, and the features it takes."""

    def __init__(self, model: LoadedModel, *, name: str) -> None:
        self.model = model
        self.name = name
        signature = model.signature
        #: None for a model stored without a signature, until data or a background tells.
        self.features = Features.of(signature) if signature is not None else None

    @property
    def native(self) -> Any:
        """The framework's own object."""
        return self.model.native

    @property
    def flavor(self) -> str:
        """The flavor's name (`sklearn`, `xgboost`, …)."""
        return self.model.flavor.name

    def features_for(self, data: Any) -> Features:
        """The signature's features, or those of `data` for a model stored without one."""
        return self.features if self.features is not None else Features.infer(data)

    def labels(self) -> list[Label] | None:
        """A classifier's class labels, in the order of its outputs; None for anything else."""
        classes = getattr(self.native, "classes_", None)
        if classes is None:
            classes = self.model.info.settings.get("classes")  # LightGBM stores them
        if classes is None:
            return None
        return [label.item() if isinstance(label, np.generic) else label for label in classes]

    def scores(self) -> tuple[Scores, str]:
        """The numeric output a model-agnostic explainer explains, and what it is: class
        probabilities where the model gives them, else its decision function, else what it
        serves (which must be numbers)."""
        native, labels = self.native, self.labels()
        if labels is not None and callable(getattr(native, "predict_proba", None)):
            return native.predict_proba, "probability"
        if labels is not None and self.flavor == "lightgbm":
            settings = {**self.model.info.settings, "method": "predict_proba"}
            return lambda x: self.model.flavor.predict(native, x, settings), "probability"
        if labels is not None and callable(getattr(native, "decision_function", None)):
            return native.decision_function, "decision function"
        return self._served, "value" if self.flavor == "sklearn" else "output"

    def raw_kind(self) -> str:
        """What a tree or linear model's raw output is: log-odds for a binary classifier that
        gives probabilities, a margin per class for a multi-class one, else a value."""
        labels = self.labels()
        if labels is None:
            return "value" if self.flavor == "sklearn" else "raw score"
        if self.flavor != "lightgbm" and not callable(getattr(self.native, "predict_proba", None)):
            return "decision function"
        return "log-odds" if len(labels) == 2 else "margin"

    def _served(self, model_input: Any) -> np.ndarray[Any, Any]:
        answer = self.model.predict(model_input)
        if isinstance(answer, dict):
            answer = next(iter(answer.values()))
        elif isinstance(answer, tuple):
            answer = answer[0]
        if hasattr(answer, "to_numpy"):  # a DataFrame or Series
            answer = answer.to_numpy()
        array = np.asarray(answer)
        if array.dtype.kind not in "biuf":
            raise UnsupportedModel(
                f"{self.name} answers {array.dtype} values, which cannot be explained: "
                "explanations need numbers (save a classifier with method='predict_proba')"
            )
        return array.astype(np.float64)

    def explanation(
        self,
        *,
        values: Any,
        base: Any,
        outputs: Any,
        kind: str,
        rows: Matrix,
        features: Features,
        explainer: str,
        index: np.ndarray[Any, Any] | None = None,
    ) -> Explanation:
        """Assemble an `Explanation` from `values` (rows x features [x outputs]), `base`
        (per output, or rows x outputs) and `outputs` (rows [x outputs]), keeping the output
        `picked` for each row (or the one `index` gives)."""
        outputs = np.asarray(outputs, dtype=np.float64).reshape(len(rows), -1)
        values = np.asarray(values, dtype=np.float64).reshape(len(rows), len(features.names), -1)
        base = np.asarray(base, dtype=np.float64)
        base = np.broadcast_to(base if base.ndim == 2 else base.reshape(1, -1), outputs.shape)
        every = np.arange(len(rows))
        index = picked(outputs) if index is None else index
        output, classes = self._describe(kind, outputs.shape[1], index)
        return Explanation(
            features=features.names,
            values=np.ascontiguousarray(values[every, :, index]),
            base_value=np.ascontiguousarray(base[every, index]),
            prediction=np.ascontiguousarray(outputs[every, index]),
            output=output,
            explainer=explainer,
            data=rows,
            classes=classes,
        )

    def _describe(
        self, kind: str, width: int, index: np.ndarray[Any, Any]
    ) -> tuple[str, tuple[Label, ...] | None]:
        labels = self.labels()
        if labels is not None and len(labels) == 2 and width == 1:
            index = np.ones_like(index)  # one output for two classes: the second one's
            width = 2
        if width == 1:
            return kind, None
        names: list[Label] = list(labels) if labels is not None else list(range(width))
        if width == 2:
            return f"{kind} of class {names[1]!r}", tuple(names[i] for i in index)
        return f"{kind} of the predicted class", tuple(names[i] for i in index)


def picked(outputs: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Which output to explain for each row of `outputs` (rows x outputs): the only one, the
    second of two (a binary classifier's positive class), else the highest (the prediction)."""
    if outputs.shape[1] == 1:
        return np.zeros(len(outputs), dtype=np.int64)
    if outputs.shape[1] == 2:
        return np.ones(len(outputs), dtype=np.int64)
    return np.asarray(np.argmax(outputs, axis=1))


def on_rows(scores: Scores, features: Features) -> RowFunction:
    """`scores` as a function of feature rows, as kernel SHAP and LIME call it."""

    def function(rows: Matrix) -> np.ndarray[Any, Any]:
        return np.asarray(scores(features.model_input(np.asarray(rows, dtype=np.float64))))

    return function
