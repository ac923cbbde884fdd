"""LightGBM: boosters and their scikit-learn wrappers, in LightGBM's own text format (no pickle).

A wrapper (`LGBMClassifier`, `LGBMRegressor`, `LGBMRanker`) comes back as the `Booster` it holds:
LightGBM has no public way to rebuild a fitted wrapper from a model file, and setting its private
attributes breaks when they change between releases. Predictions still answer as the wrapper
did: the classifier's labels (its `classes_`, recorded at save with their dtype) come from the
most probable class, and `method="predict_proba"` gives the probabilities, one column per class.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import UnsupportedModel
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._protocol import Flavor, check_method, type_names
from modelyard.flavors._summaries import jsonable
from modelyard.security import TrustPolicy

MODEL_FILE = "model.txt"
BOOSTER = "lightgbm.basic.Booster"
WRAPPER = "lightgbm.sklearn.LGBMModel"
CLASSIFIER = "lightgbm.sklearn.LGBMClassifier"
_METHODS = ("predict", "predict_proba")
_LABELS = (str, int, float, bool)
_CHILDREN = ("left_child", "right_child")


@flavor
class LightGBMFlavor(Flavor):
    """`lightgbm.Booster` and the scikit-learn wrappers (`LGBMClassifier`, `LGBMRegressor`, …)."""

    name = "lightgbm"
    extra = "lightgbm"
    packages = ("lightgbm",)

    def matches(self, model: object) -> bool:
        return bool(type_names(model) & {BOOSTER, WRAPPER})

    def save(
        self,
        model: Any,
        path: Path,
        *,
        example: Any = None,
        method: str = "predict",
        **options: Any,
    ) -> dict[str, Any]:
        cls = _lightgbm_class(model)
        check_method(model, method, _METHODS)
        booster = _booster(model)
        # Without num_iteration, the file keeps the trees up to the best iteration, if any,
        # which is also where the wrapper and the booster stop predicting.
        booster.save_model(path / MODEL_FILE)
        settings = {"format": "text", "file": MODEL_FILE, "class": cls, "method": method}
        if CLASSIFIER in type_names(model) and not callable(model.objective):
            # A custom objective gives raw scores, not probabilities: there are no labels to pick.
            settings.update(_classes_settings(model.classes_))
        return settings

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        # LightGBM aborts the process on some malformed files: long-lived processes call
        # `probe` (a short-lived process) first.
        lightgbm = require("lightgbm", extra="lightgbm")
        return lightgbm.Booster(model_file=inside(path, settings["file"]))

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        if WRAPPER in type_names(model):
            return getattr(model, settings.get("method", "predict"))(inputs)
        scores = model.predict(inputs)
        if "classes" not in settings:
            return scores
        probabilities = _probabilities(scores)
        if settings.get("method") == "predict_proba":
            return probabilities
        classes = np.asarray(settings["classes"], dtype=settings["classes_dtype"])
        return classes[np.argmax(probabilities, axis=1)]

    def describe(self, model: Any) -> dict[str, Any]:
        booster = _booster(model)
        dump = booster.dump_model()
        depths = [_depth(tree["tree_structure"]) for tree in dump["tree_info"]]
        summary: dict[str, Any] = {"class": _lightgbm_class(model), "trees": len(depths)}
        if depths:
            summary["depth"] = max(depths)
        if WRAPPER in type_names(model):
            params = model.get_params()
        else:
            params = {"objective": dump["objective"], **booster.params}
        params["num_boost_round"] = booster.current_iteration()
        summary["hyperparameters"] = jsonable(params)
        return summary


def _lightgbm_class(model: object) -> str:
    # The nearest class of LightGBM's own, so a user's subclass is recorded as what it extends.
    for cls in type(model).__mro__:
        if cls.__module__.split(".")[0] == "lightgbm":
            return f"{cls.__module__}.{cls.__qualname__}"
    raise UnsupportedModel(f"{type(model).__qualname__} is not a LightGBM model")


def _booster(model: Any) -> Any:
    return model.booster_ if WRAPPER in type_names(model) else model


def _classes_settings(classes: np.ndarray[Any, Any]) -> dict[str, Any]:
    """The class labels as JSON, with the dtype that gives the same array back."""
    labels = [label.item() if isinstance(label, np.generic) else label for label in classes]
    for label in labels:
        if not isinstance(label, _LABELS):
            raise UnsupportedModel(
                f"the classifier's label {label!r} ({type(label).__name__}) cannot be stored; "
                "LightGBM models are saved with labels that are strings, numbers or booleans"
            )
    return {"classes": labels, "classes_dtype": classes.dtype.str}


def _probabilities(scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    # A binary booster gives the probability of the second class only, as the wrapper expands it.
    if scores.ndim == 1:
        return np.vstack((1.0 - scores, scores)).transpose()
    return scores


def _depth(tree: Mapping[str, Any]) -> int:
    """Edges on the longest path from the root to a leaf (0 for a tree that is one leaf)."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((node[side], depth + 1) for side in _CHILDREN if side in node)
    return deepest
