"""Explanations fail with typed errors that say what to do."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.svm import SVC

from modelyard import Yard
from modelyard.errors import ConfigurationError, InferenceError, InvalidInput, UnsupportedModel
from modelyard.explain import explain_version, explainer_for
from tests.explain.models import Frozen, Labeller, Pair, Strict
from tests.flavors.pyfunc_models import Picky


@pytest.fixture
def logged(yard: Yard, binary: Any) -> Yard:
    x, y = binary
    yard.log_model(SVC().fit(x, y), name="svm", input_example=x[:2], reference_data=x)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    yard.log_model(forest, name="forest", input_example=x[:2], reference_data=x)
    return yard


@pytest.mark.parametrize(
    ("ref", "explainer", "error", "message"),
    [
        ("svm", "nope", ConfigurationError, "unknown explainer 'nope'; use one of deep, gradient"),
        ("svm", "tree", UnsupportedModel, "the tree explainer cannot explain SVC"),
        ("forest", "linear", UnsupportedModel, "needs a scikit-learn linear model"),
        ("forest", "deep", UnsupportedModel, "the deep explainer explains torch modules only"),
        ("forest", "gradient", UnsupportedModel, "explains torch modules only"),
    ],
)
def test_an_explainer_that_does_not_fit(
    logged: Yard, binary: Any, ref: str, explainer: str, error: type, message: str
) -> None:
    x, _ = binary
    with pytest.raises(error, match=message):
        explain_version(logged, ref, x[:2], explainer=explainer)


def test_bad_inputs_are_refused_as_inference_refuses_them(logged: Yard, binary: Any) -> None:
    x, _ = binary
    with pytest.raises(InvalidInput, match=r"input 'input-0' must have shape \[-1, 6\], got"):
        explain_version(logged, "forest", x[:2, :5])
    with pytest.raises(InvalidInput, match="must be FP64, got BYTES"):
        explain_version(logged, "forest", np.array([["a"] * 6]))
    with pytest.raises(InvalidInput, match="there are no rows to explain"):
        explain_version(logged, "forest", x[:0])


def test_models_that_fail_or_answer_words(yard: Yard) -> None:
    x = np.random.default_rng(0).normal(size=(60, 4))
    yard.log_model(Picky(), name="picky", input_example=np.abs(x[:2]), reference_data=x**2)
    with pytest.raises(InferenceError, match="the kernel explainer failed: ValueError: negative"):
        explain_version(yard, "picky", x[:2], trust=True)
    with pytest.raises(InferenceError, match="could not build the kernel explainer: ValueError"):
        explain_version(yard, "picky", np.abs(x[:2]), background=x, trust=True)
    yard.log_model(Strict(), name="strict", input_example=x[:2] ** 2, reference_data=x**2)
    with pytest.raises(InvalidInput, match="amounts must not be negative"):  # as it is
        explain_version(yard, "strict", x[:2], trust=True)
    yard.log_model(Labeller(), name="labels", input_example=x[:2], reference_data=x)
    with pytest.raises(UnsupportedModel, match="no explainer fits labels:1: .* answers <U4"):
        explain_version(yard, "labels", x[:2], trust=True)


def test_several_torch_inputs_go_to_kernel_shap(yard: Yard) -> None:
    rng = np.random.default_rng(0)
    inputs = {"a": rng.normal(size=(80, 2)).astype(np.float32),
              "b": rng.normal(size=80).astype(np.float32)}  # fmt: skip
    yard.log_model(Pair(), name="pair", input_example={k: v[:2] for k, v in inputs.items()},
                   reference_data=inputs)  # fmt: skip
    rows = {k: v[:3] for k, v in inputs.items()}
    with pytest.raises(UnsupportedModel, match="the gradient explainer takes modules of one input"):
        explain_version(yard, "pair", rows, explainer="gradient")
    with pytest.raises(UnsupportedModel, match="the tree explainer does not explain torch models"):
        explain_version(yard, "pair", rows, explainer="tree")
    explanation = explain_version(yard, "pair", rows)
    assert explanation.explainer == "kernel" and explanation.features == ("a[0]", "a[1]", "b")
    # Exact for this linear module: weight times the distance from the background mean.
    assert np.ptp(explanation.values - [1.0, -2.0, 3.0] * explanation.data, axis=0).max() < 1e-4


def test_an_explainer_for_a_model_at_hand(yard: Yard, binary: Any) -> None:
    x, y = binary
    yard.log_model(SVC().fit(x, y), name="svm", input_example=x[:2])
    model = yard.load_model("svm")
    with pytest.raises(ConfigurationError, match="needs background rows and svm has none"):
        explainer_for(model, label="svm")
    assert explainer_for(model, background=x[:20]).explain(x[:1]).explainer == "kernel"


def test_a_version_without_files_has_no_importance(yard: Yard) -> None:
    from modelyard.explain import stored_importance

    version = yard.registry.create_version("empty")
    assert stored_importance(yard, version.ref) is None


def test_an_explainer_failing_at_registration_does_not_stop_it(
    yard: Yard, caplog: pytest.LogCaptureFixture
) -> None:
    from modelyard.explain import stored_importance

    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    with caplog.at_level("WARNING", logger="modelyard.explain"):
        version = yard.log_model(Frozen(), name="frozen", input_example=x[:2], reference_data=x,
                                 options={"export": False})  # fmt: skip
    assert stored_importance(yard, version.ref) is None
    assert "frozen: no global importance at registration" in caplog.text
    assert "the deep explainer failed" in caplog.text
