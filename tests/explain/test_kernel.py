"""Kernel SHAP, the model-agnostic fallback: models no other explainer fits."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from modelyard import Yard
from modelyard.explain import explain_version, global_importance, stored_importance
from tests.explain.models import Weighted
from tests.flavors.pyfunc_models import Shapes


def additive(explanation: Any) -> float:
    total = explanation.base_value + explanation.values.sum(axis=1)
    return float(np.abs(total - explanation.prediction).max())


def test_a_support_vector_machine_gets_kernel_shap(yard: Yard, binary: Any) -> None:
    x, y = binary
    model = SVC(random_state=0).fit(x, y)  # no probabilities: its decision function is explained
    yard.log_model(model, name="svm", input_example=x[:2], reference_data=x)
    explanation = explain_version(yard, "svm", x[:3])
    assert (explanation.explainer, explanation.output) == ("kernel", "decision function of class 1")
    np.testing.assert_allclose(explanation.prediction, model.decision_function(x[:3]))
    assert additive(explanation) < 1e-6  # kernel SHAP is constrained to add up
    assert stored_importance(yard, "svm") is None  # too slow to run at registration
    on_demand = global_importance(yard, "svm", x[:4])
    assert (on_demand.explainer, on_demand.rows) == ("kernel", 4)


def test_a_pipeline_and_a_multiclass_gradient_boosting(yard: Yard, multiclass: Any) -> None:
    x, y = multiclass
    pipeline = make_pipeline(StandardScaler(), SVC(random_state=0)).fit(x, y)
    boosted = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(x, y)
    for name, model in (("pipeline", pipeline), ("boosted", boosted)):  # tree SHAP refuses it
        yard.log_model(model, name=name, input_example=x[:2], reference_data=x)
        explanation = explain_version(yard, name, x[:2])
        assert explanation.explainer == "kernel"
        assert explanation.classes == tuple(model.predict(x[:2]).tolist())
        assert additive(explanation) < 1e-6
    assert explanation.output == "probability of the predicted class"


def test_python_models_and_their_outputs(yard: Yard) -> None:
    x = np.random.default_rng(0).normal(size=(200, 4))
    yard.log_model(Weighted(), name="weighted", input_example=x[:2], reference_data=x)
    explanation = explain_version(yard, "weighted", x[:5], trust=True)
    assert (explanation.explainer, explanation.output) == ("kernel", "output")
    # Exact for a linear function: each weight times the distance from the background mean.
    weights = np.array([3.0, -2.0, 1.0, 0.0])
    assert np.ptp(explanation.values - weights * x[:5], axis=0).max() < 1e-4
    np.testing.assert_allclose(explanation.prediction, Weighted().predict(x[:5]))
    assert additive(explanation) < 1e-6
    for kind in ("dict", "frame", "tuple"):  # the first output is explained
        yard.log_model(Shapes(kind), name=kind, input_example=x[:2], reference_data=x,
                       options={"init": {"kind": kind}})  # fmt: skip
        answer = explain_version(yard, kind, x[:2], trust=True)
        np.testing.assert_allclose(answer.prediction, x[:2].sum(axis=1))


@pytest.mark.parametrize("explainer", ["kernel", "lime"])
def test_a_dataframe_model_with_integer_and_boolean_columns(yard: Yard, explainer: str) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"amount": rng.normal(100, 20, 300), "items": rng.integers(1, 6, 300),
         "member": rng.random(300) > 0.5}
    )  # fmt: skip
    labels = (frame["amount"] * frame["items"] > 300).astype(int)
    model = make_pipeline(StandardScaler(), SVC(random_state=0)).fit(frame, labels)
    yard.log_model(model, name="frame", input_example=frame[:3], reference_data=frame)
    explanation = explain_version(yard, "frame", frame[:2], explainer=explainer)
    assert explanation.features == ("amount", "items", "member")
    np.testing.assert_allclose(explanation.data, frame[:2].to_numpy(dtype=float))
    assert explanation.importance().ranked()[-1][0] == "member"  # it plays no part


def test_lightgbm_probabilities_for_model_agnostic_explainers(yard: Yard, binary: Any) -> None:
    import lightgbm

    x, y = binary
    model = lightgbm.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(x, y)
    yard.log_model(model, name="lgbm", input_example=x[:2], reference_data=x)
    explanation = explain_version(yard, "lgbm", x[:2], explainer="kernel")
    assert explanation.output == "probability of class 1"  # a booster, with the labels stored
    np.testing.assert_allclose(explanation.prediction, model.predict_proba(x[:2])[:, 1])
    assert additive(explanation) < 1e-6
    assert repr(explanation) == (
        "<Explanation kernel: 2 rows x 6 features, probability of class 1>"
    )
