"""scikit-learn: skops files by default, loaded with skops' safe types, modelyard's fixed list and
the operator's `trusted_types` only (the types recorded at save are information, never trust);
joblib only when asked for, and then loaded only with `trust=True` after a scan."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UntrustedModel
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._pickles import load_pickle
from modelyard.flavors._protocol import Flavor, check_method, top_modules
from modelyard.flavors._summaries import jsonable
from modelyard.security import SAFE_SKOPS_TYPES, TrustPolicy

SKOPS_FILE = "model.skops"
JOBLIB_FILE = "model.joblib"
_METHODS = (
    "predict", "predict_proba", "predict_log_proba", "decision_function", "transform",
    "score_samples",
)  # fmt: skip


@flavor
class SklearnFlavor(Flavor):
    """Estimators and pipelines of scikit-learn (XGBoost and LightGBM have flavors of their own)."""

    name = "sklearn"
    extra = "sklearn"
    packages = ("scikit-learn", "skops")

    def matches(self, model: object) -> bool:
        modules = top_modules(model)
        return "sklearn" in modules and not modules & {"xgboost", "lightgbm"}

    def save(
        self,
        model: Any,
        path: Path,
        *,
        example: Any = None,
        serialization: str = "skops",
        method: str = "predict",
        **options: Any,
    ) -> dict[str, Any]:
        check_method(model, method, _METHODS)
        if serialization == "joblib":
            require("joblib", extra="sklearn").dump(model, path / JOBLIB_FILE)
            return {"format": "joblib", "file": JOBLIB_FILE, "method": method}
        if serialization != "skops":
            raise ConfigurationError(
                f"unknown sklearn serialization {serialization!r}; use 'skops' or 'joblib'"
            )
        skops = require("skops.io", extra="sklearn")
        skops.dump(model, path / SKOPS_FILE)
        trusted = sorted(skops.get_untrusted_types(file=path / SKOPS_FILE))
        return {"format": "skops", "file": SKOPS_FILE, "method": method, "trusted_types": trusted}

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        file = inside(path, settings["file"])
        if settings["format"] in ("joblib", "pickle"):
            return load_pickle(file, trust=trust)
        skops = require("skops.io", extra="sklearn")
        # The types a version recorded at save are information only: what may be built is
        # skops' own defaults, modelyard's fixed list and the operator's `trusted_types`.
        unknown = sorted(
            name for name in skops.get_untrusted_types(file=file) if not trust.allows_type(name)
        )
        if unknown:
            raise UntrustedModel(str(file), kind="skops file", types=unknown)
        allowed = sorted({*SAFE_SKOPS_TYPES, *trust.types})
        return skops.load(file, trusted=allowed)

    def pickle_settings(self, file: str) -> dict[str, Any]:
        return {"format": "pickle", "file": file, "method": "predict"}

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        return getattr(model, settings.get("method", "predict"))(inputs)

    def describe(self, model: Any) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "class": f"{type(model).__module__}.{type(model).__qualname__}",
            "hyperparameters": jsonable(model.get_params(deep=False)),
        }
        estimators = getattr(model, "estimators_", None)
        predictors = getattr(model, "_predictors", None)  # histogram gradient boosting
        if predictors is not None:
            trees = [tree for iteration in predictors for tree in iteration]
            summary["trees"] = len(trees)
            summary["depth"] = max((tree.get_max_depth() for tree in trees), default=0)
        elif estimators is not None:
            trees = [tree for tree in _flat(estimators) if hasattr(tree, "get_depth")]
            if trees:
                summary["trees"] = len(trees)
                summary["depth"] = max(tree.get_depth() for tree in trees)
        elif hasattr(model, "get_depth") and hasattr(model, "tree_"):
            summary["trees"] = 1
            summary["depth"] = model.get_depth()
        return summary


def _flat(estimators: Any) -> list[Any]:
    flat: list[Any] = []
    for item in estimators if isinstance(estimators, list | tuple) else list(estimators):
        if isinstance(item, list | tuple) or hasattr(item, "ravel"):
            flat.extend(_flat(list(item.ravel()) if hasattr(item, "ravel") else item))
        else:
            flat.append(item)
    return flat
