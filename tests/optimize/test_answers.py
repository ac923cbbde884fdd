"""A converted or quantized child answers with its parent's output names, datatypes, shapes and
form, and registers with its parent's signature: a served alias can move to it, and a shadow of
it compares like with like."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier

from modelyard import Yard
from modelyard.errors import UnsupportedModel
from modelyard.flavors import datatype_of, load_model, save_model
from modelyard.optimize._checks import check_signature

X, Y = make_classification(300, 6, n_informative=4, n_classes=3, random_state=0)
XR, YR = make_regression(300, 6, noise=1.0, random_state=0)


def same_answers(yard: Yard, parent: str, child: str, x: Any) -> Any:
    """The child's signature is the parent's, and it answers in the same form and types."""
    assert yard.get_version(child).signature == yard.get_version(parent).signature
    expected, answer = yard.load_model(parent).predict(x), yard.load_model(child).predict(x)
    assert type(answer) is type(expected) and answer.shape == expected.shape
    # The same OIP datatype: ONNX gives strings as objects where scikit-learn gives "<U3".
    assert datatype_of(answer.dtype) == datatype_of(expected.dtype)
    return expected, answer


def test_a_converted_classifier_answers_labels_only(yard: Yard) -> None:
    strings = np.array(["cat", "dog", "owl"])[Y]
    yard.log_model(LogisticRegression().fit(X, strings), name="clf", input_example=X[:5])
    child = yard.optimize.convert("clf:1", eval_data=(X, strings), max_slowdown=None).version
    expected, answer = same_answers(yard, "clf:1", child.ref, X[:64])
    assert np.mean(answer == expected) >= 0.99
    settings = yard.load_model(child.ref).info.settings
    assert [output["source"] for output in settings["answer"]["outputs"]] == ["output-0"]


def test_a_converted_regressor_needs_no_mapping(yard: Yard) -> None:
    yard.log_model(Ridge().fit(XR, YR), name="ridge", input_example=XR[:5])
    result = yard.optimize.convert("ridge:1", eval_data=(XR, YR), metric="r2", max_slowdown=None)
    expected, answer = same_answers(yard, "ridge:1", result.version.ref, XR[:64])
    np.testing.assert_allclose(answer, expected, atol=1e-5 * np.ptp(YR))
    assert "answer" not in yard.load_model(result.version.ref).info.settings


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_quantized_child_of_a_converted_classifier_answers_as_the_first(yard: Yard) -> None:
    mlp = MLPClassifier(hidden_layer_sizes=(32,), max_iter=400, random_state=0).fit(X, Y)
    yard.log_model(mlp, name="mlp", input_example=X[:5])
    converted = yard.optimize.convert("mlp:1", eval_data=(X, Y), max_slowdown=None).version
    quantized = yard.optimize.quantize(converted.ref, eval_data=(X, Y), max_slowdown=None,
                                       tolerance=0.5).version  # fmt: skip
    half = yard.optimize.quantize(converted.ref, eval_data=(X, Y), max_slowdown=None,
                                  dtype="float16", tolerance=0.5).version  # fmt: skip
    for child in (converted, quantized, half):
        expected, answer = same_answers(yard, "mlp:1", child.ref, X[:64])
        assert np.mean(answer == expected) >= 0.9


def test_torch_children_answer_float32_as_their_parent(
    yard: Yard, digits_mlp: Any, digits: Any
) -> None:
    _, _, x, y = digits
    yard.log_model(digits_mlp, name="digits", input_example=x[:5],
                   options={"export": False, "init": {"hidden": 64}})  # fmt: skip
    onnx_child = yard.optimize.convert("digits:1", eval_data=(x, y), max_slowdown=None).version
    half = yard.optimize.quantize("digits:1", eval_data=(x, y), max_slowdown=None,
                                  dtype="float16").version  # fmt: skip
    int8 = yard.optimize.quantize("digits:1", eval_data=(x, y), max_slowdown=None).version
    for child in (onnx_child, half, int8):
        expected, answer = same_answers(yard, "digits:1", child.ref, x[:64])
        assert answer.dtype == np.float32
        assert np.mean(answer.argmax(axis=1) == expected.argmax(axis=1)) >= 0.9
    assert yard.load_model(half.ref).info.settings["answer"]["outputs"][0]["datatype"] == "FP32"


def test_a_child_that_answers_otherwise_is_refused(tmp_path: Path) -> None:
    save_model(LogisticRegression().fit(X, Y), tmp_path / "parent", input_example=X[:5])
    parent = load_model(tmp_path / "parent")
    check_signature(parent, parent)  # the same signature: nothing to say
    from modelyard.optimize._convert import to_onnx

    save_model(to_onnx(parent), tmp_path / "child", input_example=X[:5])  # no answer setting
    with pytest.raises(UnsupportedModel, match=r"-> \(output-0 INT64 \[-1\], probabilities"):
        check_signature(parent, load_model(tmp_path / "child"))
