"""XGBoost: boosters and their scikit-learn wrappers, in XGBoost's own UBJSON format (no pickle).

The file holds the trees and, for a wrapper, what the wrapper needs to answer as before (its
classes, best iteration); the class to rebuild is recorded in the settings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from modelyard._imports import require
from modelyard.errors import UnsupportedModel
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._protocol import Flavor, check_method, type_names
from modelyard.flavors._summaries import jsonable
from modelyard.security import TrustPolicy

MODEL_FILE = "model.ubj"
BOOSTER = "xgboost.core.Booster"
WRAPPER = "xgboost.sklearn.XGBModel"
_METHODS = ("predict", "predict_proba", "apply")
# Runtime settings (threads, device) and what training learnt (base score) are not hyper-parameters.
_NOT_HYPERPARAMETERS = frozenset({"generic_param", "learner_model_param"})


@flavor
class XGBoostFlavor(Flavor):
    """`xgboost.Booster` and the scikit-learn wrappers (`XGBClassifier`, `XGBRegressor`, …)."""

    name = "xgboost"
    extra = "xgboost"
    packages = ("xgboost",)

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
        cls = _xgboost_class(model)
        check_method(model, method, _METHODS)
        model.save_model(path / MODEL_FILE)
        return {"format": "ubj", "file": MODEL_FILE, "class": cls, "method": method}

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        model = _rebuild(settings["class"])
        model.load_model(inside(path, settings["file"]))
        return model

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        if BOOSTER in type_names(model):
            return model.predict(_dmatrix(inputs))
        return getattr(model, settings.get("method", "predict"))(inputs)

    def describe(self, model: Any) -> dict[str, Any]:
        is_booster = BOOSTER in type_names(model)
        booster = model if is_booster else model.get_booster()
        summary: dict[str, Any] = {"class": _xgboost_class(model)}
        depths = [_depth(tree) for tree in _trees(booster)]
        if depths:
            summary["trees"] = len(depths)
            summary["depth"] = max(depths)
        params = _config_params(booster) if is_booster else model.get_params()
        summary["hyperparameters"] = jsonable(
            {**params, "num_boost_round": booster.num_boosted_rounds()}
        )
        return summary


def _xgboost_class(model: object) -> str:
    # The nearest class of XGBoost's own: a user's subclass is rebuilt as the class it extends.
    for cls in type(model).__mro__:
        if cls.__module__.split(".")[0] == "xgboost":
            return f"{cls.__module__}.{cls.__qualname__}"
    raise UnsupportedModel(f"{type(model).__qualname__} is not an XGBoost model")


def _dmatrix(inputs: Any) -> Any:
    if "xgboost.core.DMatrix" in type_names(inputs):
        return inputs
    xgboost = require("xgboost", extra="xgboost")
    # Categorical columns of a DataFrame go in as categories, as they did in training.
    return xgboost.DMatrix(inputs, enable_categorical=True)


def _rebuild(name: str) -> Any:
    """An empty instance of the recorded class, which must be XGBoost's Booster or a wrapper."""
    module_name, _, class_name = name.rpartition(".")
    if module_name.split(".")[0] != "xgboost":
        raise UnsupportedModel(f"cannot rebuild {name!r}: it is not a class of XGBoost")
    xgboost = require("xgboost", extra="xgboost")
    module = require(module_name, extra="xgboost")
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, xgboost.Booster | xgboost.XGBModel):
        raise UnsupportedModel(f"cannot rebuild {name!r}: it is not an XGBoost Booster or model")
    return cls()


def _trees(booster: Any) -> Iterator[dict[str, Any]]:
    # A linear booster dumps weights, not trees: those have no node ids.
    for dump in booster.get_dump(dump_format="json"):
        tree = json.loads(dump)
        if "nodeid" in tree:
            yield tree


def _depth(tree: Mapping[str, Any]) -> int:
    """Edges on the longest path from the root to a leaf (0 for a tree that is one leaf)."""
    deepest, stack = 0, [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.get("children", ()))
    return deepest


def _config_params(booster: Any) -> dict[str, Any]:
    """The training parameters in a booster's saved configuration, as numbers where they are."""
    learner = json.loads(booster.save_config())["learner"]
    return {key: _number(value) for key, value in _param_leaves(learner)}


def _param_leaves(config: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    # Parameters sit in `*_param` sections, nested under the booster (and under `gbtree` for dart).
    for key, value in config.items():
        if not isinstance(value, Mapping) or key in _NOT_HYPERPARAMETERS:
            continue
        if key.endswith("_param"):
            yield from ((k, v) for k, v in value.items() if not isinstance(v, Mapping))
        else:
            yield from _param_leaves(value)


def _number(value: Any) -> Any:
    # XGBoost writes every value of its configuration as a string.
    for convert in (int, float):
        try:
            number = convert(value)
        except (TypeError, ValueError):
            continue
        return number if math.isfinite(number) else value
    return value
