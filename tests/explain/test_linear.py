"""Linear models with known coefficients: SHAP (linear and kernel) and LIME find the features
that matter, in the order they matter."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard import Yard
from modelyard.explain import explain_version, global_importance

RNG = np.random.default_rng(3)
COEFFICIENTS = np.array([0.0, 4.0, 0.0, -2.5, 0.3, 1.5, 0.0, -0.2])
TOP = ["x1", "x3", "x5"]  # by |coefficient|; every feature has the same spread
X = RNG.normal(size=(600, 8))
Y = X @ COEFFICIENTS + 1.0 + RNG.normal(scale=0.05, size=600)


@pytest.fixture
def linear(yard: Yard) -> str:
    model = LinearRegression().fit(X, Y)
    return yard.log_model(model, name="linear", input_example=X[:2], reference_data=X).ref


def ranked(values: np.ndarray) -> list[str]:  # type: ignore[type-arg]
    importance = np.abs(values).mean(axis=0)
    return [f"x{i}" for i in np.argsort(-importance)]


def test_linear_shap_is_exact_and_ranks_the_true_features(yard: Yard, linear: str) -> None:
    explanation = explain_version(yard, linear, X[:100])
    assert (explanation.explainer, explanation.output, explanation.classes) == (
        "linear", "value", None,
    )  # fmt: skip
    assert ranked(explanation.values)[:3] == TOP
    model = yard.load_model(linear).native
    np.testing.assert_allclose(explanation.prediction, model.predict(X[:100]))
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.abs(total - explanation.prediction).max() <= 1e-6
    # Linear SHAP is the coefficient times the distance from the background mean.
    background = yard.load_model(linear).folder / "explain" / "background.npz"
    with np.load(background) as stored:
        mean = stored["rows"].mean(axis=0)
    np.testing.assert_allclose(explanation.values, model.coef_ * (X[:100] - mean), atol=1e-9)


def test_kernel_shap_agrees_with_linear_shap(yard: Yard, linear: str) -> None:
    exact = explain_version(yard, linear, X[:30])
    kernel = explain_version(yard, linear, X[:30], explainer="kernel")
    assert kernel.explainer == "kernel" and ranked(kernel.values)[:3] == TOP
    total = kernel.base_value + kernel.values.sum(axis=1)
    np.testing.assert_allclose(total, exact.prediction, atol=1e-6)
    # Kernel SHAP averages over 50 of the 100 background rows, so its values are the linear
    # ones measured from another mean: they differ by one constant per feature.
    assert np.ptp(kernel.values - exact.values, axis=0).max() < 1e-4


def test_lime_ranks_the_true_features(yard: Yard, linear: str) -> None:
    explanation = explain_version(yard, linear, X[:20], explainer="lime")
    assert (explanation.explainer, explanation.output) == ("lime", "value")
    assert ranked(explanation.values)[:3] == TOP
    # LIME fits a surrogate on quartile bins: its predictions track the model, coarsely.
    local = explanation.base_value + explanation.values.sum(axis=1)
    assert np.corrcoef(explanation.prediction, local)[0, 1] > 0.8


def test_a_classifier_explained_by_shap_and_lime(yard: Yard) -> None:
    labels = (X @ COEFFICIENTS > 0).astype(int)
    model = LogisticRegression().fit(X, labels)
    yard.log_model(model, name="clf", input_example=X[:2], reference_data=X)
    shap = explain_version(yard, "clf", X[:30])
    assert (shap.explainer, shap.output) == ("linear", "log-odds of class 1")
    assert ranked(shap.values)[:3] == TOP
    np.testing.assert_allclose(shap.prediction, model.decision_function(X[:30]))
    assert np.abs(shap.base_value + shap.values.sum(axis=1) - shap.prediction).max() <= 1e-6
    lime = explain_version(yard, "clf", X[:20], explainer="lime")
    assert (lime.explainer, lime.output) == ("lime", "probability of class 1")
    assert ranked(lime.values)[:2] == TOP[:2]
    np.testing.assert_allclose(lime.prediction, model.predict_proba(X[:20])[:, 1])
    stored = global_importance(yard, "clf")  # computed at registration
    assert (stored.explainer, stored.rows, stored.output) == ("linear", 500, shap.output)
    assert [name for name, _ in stored.ranked(3)] == TOP


def test_lime_explains_the_predicted_class_of_many(yard: Yard) -> None:
    score = X @ COEFFICIENTS
    labels = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    yard.log_model(LogisticRegression().fit(X, labels), name="three", reference_data=X)
    explanation = explain_version(yard, "three", X[:6], explainer="lime")
    assert explanation.output == "probability of the predicted class"
    model = yard.load_model("three").native
    assert explanation.classes == tuple(model.predict(X[:6]).tolist())
    chosen = model.predict_proba(X[:6]).max(axis=1)
    np.testing.assert_allclose(explanation.prediction, chosen)


def test_a_classifier_without_probabilities(yard: Yard) -> None:
    from sklearn.svm import LinearSVC

    labels = (X @ COEFFICIENTS > 0).astype(int)
    model = LinearSVC().fit(X, labels)
    yard.log_model(model, name="svc", input_example=X[:2], reference_data=X)
    explanation = explain_version(yard, "svc", X[:10])
    assert (explanation.explainer, explanation.output) == (
        "linear", "decision function of class 1",
    )  # fmt: skip
    np.testing.assert_allclose(explanation.prediction, model.decision_function(X[:10]))
