"""Torch modules: deep SHAP where the module's layers are at hand, gradient SHAP otherwise."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from modelyard import Yard
from modelyard.errors import UnsupportedModel
from modelyard.explain import explain_version, global_importance, stored_importance
from tests.explain.models import Flat, TinyNet, trained_net


@pytest.fixture(scope="module")
def net(multiclass: Any) -> TinyNet:
    x, y = multiclass
    return trained_net(x, y)


def outputs(net: TinyNet, x: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    with torch.no_grad():
        return net(torch.from_numpy(x.astype(np.float32))).numpy().astype(np.float64)


def test_deep_shap_adds_up_for_a_module_rebuilt_from_its_class(
    yard: Yard, net: TinyNet, multiclass: Any
) -> None:
    x, y = multiclass
    x32 = x.astype(np.float32)
    yard.log_model(net, name="net", input_example=x32[:2], reference_data=x32,
                   options={"export": False})  # fmt: skip
    explanation = explain_version(yard, "net", x32[:20])
    assert (explanation.explainer, explanation.output) == ("deep", "output of the predicted class")
    own = outputs(net, x[:20])
    predicted = own.argmax(axis=1)
    assert explanation.classes == tuple(predicted.tolist())
    np.testing.assert_allclose(explanation.prediction, own[np.arange(20), predicted], rtol=1e-6)
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.abs(total - explanation.prediction).max() < 1e-5  # float32 arithmetic
    stored = stored_importance(yard, "net")
    assert stored is not None and (stored.explainer, stored.rows) == ("deep", 100)


def test_an_exported_program_gets_gradient_shap(yard: Yard, net: TinyNet, multiclass: Any) -> None:
    x, _ = multiclass
    x32 = x.astype(np.float32)
    # This init does not rebuild the module: no class is kept beside the exported program.
    yard.log_model(net, name="exported", input_example=x32[:2], reference_data=x32,
                   options={"init": {"hidden": 8}})  # fmt: skip
    assert stored_importance(yard, "exported") is None  # gradient SHAP is not run at registration
    with pytest.raises(UnsupportedModel, match="use the gradient explainer"):
        explain_version(yard, "exported", x32[:2], explainer="deep")
    gradient = explain_version(yard, "exported", x32[:20])
    assert gradient.explainer == "gradient"
    kernel = explain_version(yard, "exported", x32[:20], explainer="kernel")
    assert gradient.classes == kernel.classes
    np.testing.assert_allclose(gradient.prediction, kernel.prediction, rtol=1e-6)
    # Expected gradients add up only on average (200 samples a row); they agree with kernel
    # SHAP on what matters.
    error = np.abs(gradient.base_value + gradient.values.sum(axis=1) - gradient.prediction)
    assert error.mean() < 0.1 * np.ptp(gradient.prediction)
    assert np.corrcoef(gradient.values.ravel(), kernel.values.ravel())[0, 1] > 0.8
    assert global_importance(yard, "exported", x32[:10]).explainer == "gradient"


def test_an_exported_program_whose_class_rebuilds_it_gets_deep_shap(
    yard: Yard, net: TinyNet, multiclass: Any
) -> None:
    x, _ = multiclass
    x32 = x.astype(np.float32)
    yard.log_model(net, name="both", input_example=x32[:2], reference_data=x32[:50],
                   options={"init": {"features": 6, "hidden": 16, "classes": 3}})  # fmt: skip
    explanation = explain_version(yard, "both", x32[:5])
    assert explanation.explainer == "deep"
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.abs(total - explanation.prediction).max() < 1e-5


def test_two_outputs_explain_the_second_and_one_output_itself(
    yard: Yard, binary: Any, regression: Any
) -> None:
    x, y = binary
    two = trained_net(x, y, classes=2)
    yard.log_model(two, name="two", input_example=x[:2].astype(np.float32),
                   reference_data=x.astype(np.float32),
                   options={"export": False, "init": {"classes": 2}})  # fmt: skip
    explanation = explain_version(yard, "two", x[:5].astype(np.float32))
    assert (explanation.output, explanation.classes) == ("output of class 1", (1,) * 5)
    np.testing.assert_allclose(explanation.prediction, outputs(two, x[:5])[:, 1], rtol=1e-6)
    rx, _ = regression
    yard.log_model(Flat(), name="flat", input_example=rx[:2].astype(np.float32),
                   reference_data=rx.astype(np.float32), options={"export": False})  # fmt: skip
    with pytest.raises(UnsupportedModel, match="the deep explainer takes modules with 2-D outputs"):
        explain_version(yard, "flat", rx[:4].astype(np.float32), explainer="deep")
    explanation = explain_version(yard, "flat", rx[:4].astype(np.float32))
    assert (explanation.explainer, explanation.output, explanation.classes) == (
        "gradient", "output", None,
    )  # fmt: skip
    # For a linear module, weight times the distance from 200 background rows drawn at random.
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert np.abs(total - explanation.prediction).max() < 0.1 * np.ptp(explanation.prediction)


def test_an_int8_module_gets_kernel_shap(yard: Yard, net: TinyNet, multiclass: Any) -> None:
    from modelyard.optimize._torch_steps import quantize_int8

    x, _ = multiclass
    x32 = x.astype(np.float32)
    yard.log_model(quantize_int8(net), name="int8", input_example=x32[:2], reference_data=x32,
                   options={"init": {}})  # fmt: skip
    with pytest.raises(UnsupportedModel, match="needs gradients, which int8 layers lack"):
        explain_version(yard, "int8", x32[:2], explainer="gradient")
    explanation = explain_version(yard, "int8", x32[:2])
    assert explanation.explainer == "kernel"
    # Dynamic int8 scales activations by each batch's range, so a row's output depends a little
    # on the rows batched with it: kernel SHAP's batches are not the request's.
    total = explanation.base_value + explanation.values.sum(axis=1)
    assert (
        np.abs(total - explanation.prediction).max() < 0.05 * np.abs(explanation.prediction).max()
    )
