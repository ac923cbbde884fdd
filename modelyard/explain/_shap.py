"""SHAP explainers for tabular models: tree (exact, no background needed), linear and kernel
(model-agnostic, the fallback)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import InferenceError, UnsupportedModel
from modelyard.explain._explainer import Explainer, explainer
from modelyard.explain._explanation import Explanation
from modelyard.explain._features import Features, Matrix
from modelyard.explain._target import Scores, Target, on_rows

#: Background rows kernel SHAP averages over: its cost grows with them, per row explained.
KERNEL_BACKGROUND_ROWS = 50
# A guard, not the precision: tree SHAP adds up to float rounding (1e-12 in float64, about 1e-6
# relative for XGBoost's float32); past this the explainer misread the model.
_ADDITIVITY_GUARD = 1e-3


def shap_module() -> ModuleType:
    """`shap`, imported quietly: its import sets colormap extremes the way matplotlib 3.11
    deprecates, which would fail any caller running with warnings as errors."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"The set_\w+ function will be deprecated", PendingDeprecationWarning
        )
        return require("shap", extra="explain")


@explainer
class TreeExplainer(Explainer):
    """Tree SHAP on the model's raw output (log-odds or margins for boosted classifiers,
    probabilities for forests, values for regressors): exact, and needs no background."""

    name = "tree"

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        if target.flavor not in ("sklearn", "xgboost", "lightgbm"):
            raise UnsupportedModel(f"the tree explainer does not explain {target.flavor} models")
        try:
            self._shap = shap_module().TreeExplainer(target.native)
        except Exception as error:  # shap refuses models in several ways, each its own type
            raise UnsupportedModel(
                f"the tree explainer cannot explain {type(target.native).__qualname__}: {error}"
            ) from None
        self._outputs, self._kind = _tree_outputs(target, self._shap.model.tree_output)
        self._matrix = _xgboost_matrix(target, getattr(self._shap.model, "_xgb_dmatrix_props", {}))

    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        # For XGBoost, one DMatrix serves both calls below, as in shap's own `__call__`:
        # building it costs about as much as the margin (a third of a row's explanation).
        model_input = self._matrix(features.model_input(rows))
        with warnings.catch_warnings():
            # A note that binary LightGBM values changed shape in shap 0.45 (they are read
            # either way below).
            warnings.filterwarnings("ignore", "LightGBM binary classifier", UserWarning)
            # shap would predict again to check additivity: the same check is made below, on
            # the prediction that is returned anyway.
            values = self._shap.shap_values(model_input, check_additivity=False)
        explanation = self.target.explanation(
            values=values, base=self._shap.expected_value, outputs=self._outputs(model_input),
            kind=self._kind, rows=rows, features=features, explainer=self.name,
        )  # fmt: skip
        _check_additivity(self.target, explanation)
        return explanation


def _tree_outputs(target: Target, tree_output: str) -> tuple[Scores, str]:
    """The framework's own call for the output tree SHAP explains, and what that output is."""
    native = target.native
    if target.flavor == "xgboost":  # called on the DMatrix `_xgboost_matrix` builds
        wrapped = callable(getattr(native, "get_booster", None))  # a scikit-learn wrapper
        booster = native.get_booster() if wrapped else native
        # The trees the model's own `predict` uses: the wrapper stops at the best iteration
        # of an early-stopped fit; a Booster uses them all.
        try:
            trees = (0, native.best_iteration + 1) if wrapped else (0, 0)
        except AttributeError:  # not early-stopped
            trees = (0, 0)
        kind = target.raw_kind() if wrapped else "raw score"
        return lambda matrix: booster.predict(
            matrix, output_margin=True, iteration_range=trees, validate_features=False
        ), kind  # fmt: skip
    if target.flavor == "lightgbm":
        return lambda x: native.predict(x, raw_score=True), target.raw_kind()
    if target.labels() is None:
        return native.predict, "value"
    if tree_output == "probability":  # forests average the leaves' class shares
        return native.predict_proba, "probability"
    return native.decision_function, target.raw_kind()


def _xgboost_matrix(target: Target, options: dict[str, Any]) -> Callable[[Any], Any]:
    """What the model input becomes before explaining it: for XGBoost a DMatrix, built with
    the `options` shap would build it with; the input itself for everything else."""
    if target.flavor != "xgboost":
        return lambda model_input: model_input
    xgboost = require("xgboost", extra="xgboost")
    return lambda model_input: xgboost.DMatrix(model_input, **options)


def _check_additivity(target: Target, explanation: Explanation) -> None:
    total = explanation.base_value + explanation.values.sum(axis=1)
    error = np.abs(total - explanation.prediction)
    allowed = _ADDITIVITY_GUARD * np.maximum(1.0, np.abs(explanation.prediction))
    if np.any(error > allowed):  # pragma: no cover - a guard: no model known misleads shap
        raise InferenceError(
            target.name,
            f"its SHAP values do not add up to its output (off by up to {error.max():.3g}); "
            "the explainer misread this model",
        )


@explainer
class LinearExplainer(Explainer):
    """Linear SHAP on a scikit-learn linear model's raw output: exact, each feature's
    coefficient times its distance from the background mean."""

    name = "linear"

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        native = target.native
        if target.flavor != "sklearn" or not (
            hasattr(native, "coef_") and hasattr(native, "intercept_")
        ):
            raise UnsupportedModel(
                f"the linear explainer needs a scikit-learn linear model (coef_, intercept_), "
                f"not {type(native).__qualname__}"
            )
        self._shap = shap_module().LinearExplainer(native, self.background())
        if target.labels() is None:
            self._outputs: Scores = native.predict
        else:
            self._outputs = native.decision_function

    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        values = self._shap(rows).values
        return self.target.explanation(
            values=values, base=self._shap.expected_value,
            outputs=self._outputs(features.model_input(rows)), kind=self.target.raw_kind(),
            rows=rows, features=features, explainer=self.name,
        )  # fmt: skip


@explainer
class KernelExplainer(Explainer):
    """Kernel SHAP on the model's probabilities (or its decision function, or what it serves):
    model-agnostic, a weighted regression over coalitions of features, each absent feature
    taking values from the background rows."""

    name = "kernel"
    serial = True  # shap's KernelExplainer keeps each call's samples on itself

    def __init__(self, target: Target, background: Matrix | None) -> None:
        super().__init__(target, background)
        sample = self.background(KERNEL_BACKGROUND_ROWS)
        features = self.features()
        scores, self._kind = target.scores()
        self._function = on_rows(scores, features)
        self._shap = shap_module().KernelExplainer(self._function, sample)

    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        values = self._shap.shap_values(rows, silent=True)
        return self.target.explanation(
            values=values, base=self._shap.expected_value, outputs=self._function(rows),
            kind=self._kind, rows=rows, features=features, explainer=self.name,
        )  # fmt: skip
