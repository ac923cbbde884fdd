"""Tree SHAP for XGBoost explains the trees the model's own `predict` uses, on one DMatrix."""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost

from modelyard import Yard
from modelyard.explain import explain_version


def test_an_early_stopped_model_is_explained_as_it_predicts(yard: Yard, binary: Any) -> None:
    x, y = binary
    model = xgboost.XGBClassifier(
        n_estimators=200, max_depth=3, learning_rate=0.5, early_stopping_rounds=2, n_jobs=1
    )
    model.fit(x[:200], y[:200], eval_set=[(x[200:], y[200:])], verbose=False)
    assert model.best_iteration + 1 < model.get_booster().num_boosted_rounds()  # it stopped
    yard.log_model(model, name="stopped", input_example=x[:2])
    explanation = explain_version(yard, "stopped", x[:10])
    np.testing.assert_allclose(
        explanation.prediction, model.predict(x[:10], output_margin=True), rtol=1e-6
    )
    total = explanation.base_value + explanation.values.sum(axis=1)
    np.testing.assert_allclose(total, explanation.prediction, atol=1e-4)
