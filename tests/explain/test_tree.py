"""Tree SHAP through the registry: the values add up to the framework's own output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)

from modelyard import Yard
from modelyard.explain import explain_version

Raw = Callable[[Any, Any], Any]
# One thread: OpenMP workers spinning for work slow everything down on a small shared machine.
XGB: dict[str, Any] = {"n_estimators": 20, "max_depth": 3, "n_jobs": 1}
LGB: dict[str, Any] = {"n_estimators": 20, "verbose": -1, "n_jobs": 1}


def margin(model: Any, x: Any) -> Any:
    return model.predict(x, output_margin=True)


def raw_score(model: Any, x: Any) -> Any:
    return model.booster_.predict(x, raw_score=True)


CASES: dict[str, tuple[Callable[[], Any], str, Raw, str]] = {
    # name: (model, data set, its own raw output, what is explained)
    "sklearn-gb": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
                   "binary", lambda m, x: m.decision_function(x), "log-odds of class 1"),
    "sklearn-gb-regressor": (lambda: GradientBoostingRegressor(n_estimators=20, random_state=0),
                             "regression", lambda m, x: m.predict(x), "value"),
    "sklearn-hgb-3": (lambda: HistGradientBoostingClassifier(max_iter=20, random_state=0),
                      "multiclass", lambda m, x: m.decision_function(x),
                      "margin of the predicted class"),
    "sklearn-forest-3": (lambda: RandomForestClassifier(n_estimators=10, random_state=0),
                         "multiclass", lambda m, x: m.predict_proba(x),
                         "probability of the predicted class"),
    "sklearn-forest-regressor": (lambda: RandomForestRegressor(n_estimators=10, random_state=0),
                                 "regression", lambda m, x: m.predict(x), "value"),
    "xgboost": (lambda: xgboost.XGBClassifier(**XGB), "binary", margin,
                "log-odds of class 1"),
    "xgboost-3": (lambda: xgboost.XGBClassifier(**XGB), "multiclass",
                  margin, "margin of the predicted class"),
    "xgboost-regressor": (lambda: xgboost.XGBRegressor(**XGB),
                          "regression", margin, "raw score"),
    "lightgbm": (lambda: lightgbm.LGBMClassifier(**LGB), "binary",
                 raw_score, "log-odds of class 1"),
    "lightgbm-3": (lambda: lightgbm.LGBMClassifier(**LGB), "multiclass",
                   raw_score, "margin of the predicted class"),
    "lightgbm-regressor": (lambda: lightgbm.LGBMRegressor(**LGB),
                           "regression", raw_score, "raw score"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_tree_shap_adds_up_to_the_model_output(
    yard: Yard, case: str, request: pytest.FixtureRequest
) -> None:
    build, dataset, raw, output = CASES[case]
    x, y = request.getfixturevalue(dataset)
    model = build().fit(x, y)
    version = yard.log_model(model, name="trees", input_example=x[:2], reference_data=x)
    explanation = explain_version(yard, version.ref, x[:40])
    assert explanation.explainer == "tree" and explanation.output == output
    assert explanation.features == tuple(f"x{i}" for i in range(6))
    assert explanation.values.shape == (40, 6)
    own = np.asarray(raw(model, x[:40]), dtype=np.float64).reshape(40, -1)
    if own.shape[1] == 1:
        expected = own[:, 0]
    elif own.shape[1] == 2:  # a forest's two class probabilities: the positive class
        expected = own[:, 1]
    else:  # the predicted class's output
        assert explanation.classes == tuple(model.predict(x[:40]).tolist())
        expected = own[np.arange(40), np.argmax(own, axis=1)]
    np.testing.assert_array_equal(explanation.prediction, expected)
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.all(np.abs(total - expected) <= 1e-6 * float32_scale(case, explanation))


def float32_scale(case: str, explanation: Any) -> Any:
    """1, or for XGBoost, which computes in float32 (7 significant digits), the size of the
    terms summed: its own output is only that exact."""
    if not case.startswith("xgboost"):
        return 1.0
    terms = np.abs(explanation.values).sum(axis=1) + np.abs(explanation.base_value)
    return np.maximum(1.0, terms)


def test_dataframes_keep_their_column_names(yard: Yard) -> None:
    from sklearn.datasets import load_breast_cancer

    frame, target = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = frame.iloc[:, :8]
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(frame, target)
    yard.log_model(model, name="cancer", input_example=frame[:3], reference_data=frame)
    explanation = explain_version(yard, "cancer", frame[:5])
    assert explanation.features == tuple(frame.columns)
    np.testing.assert_allclose(explanation.data, frame[:5].to_numpy())
    np.testing.assert_allclose(explanation.prediction, model.decision_function(frame[:5]))
    feature, value = explanation.top(0, 1)[0]
    assert feature in frame.columns and abs(value) == np.abs(explanation.values[0]).max()
    columns = {name: frame[name].to_numpy()[:5] for name in frame.columns}  # as the server has them
    np.testing.assert_allclose(explain_version(yard, "cancer", columns).values, explanation.values)
    shuffled = pd.DataFrame({name: frame[name] for name in reversed(frame.columns)})[:5]
    np.testing.assert_allclose(explain_version(yard, "cancer", shuffled).values, explanation.values)


def test_a_booster_without_its_wrapper(yard: Yard, binary: Any) -> None:
    x, y = binary
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 3}, xgboost.DMatrix(x, y), num_boost_round=10
    )
    yard.log_model(booster, name="booster", input_example=x[:2])
    explanation = explain_version(yard, "booster", x[:10])
    assert (explanation.explainer, explanation.output, explanation.classes) == (
        "tree", "raw score", None,
    )  # fmt: skip
    expected = booster.predict(xgboost.DMatrix(x[:10]), output_margin=True)
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.all(np.abs(total - expected) <= 1e-6 * float32_scale("xgboost", explanation))
