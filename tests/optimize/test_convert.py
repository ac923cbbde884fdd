"""Conversion to ONNX on its own: each converted graph, saved and loaded by the ONNX flavor,
answers the parent's requests as the parent did (batch 1 and 64); graph optimization keeps the
answers; and every model or option that cannot be converted is refused with a typed error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import onnx
import pandas as pd
import pytest
import torch
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from modelyard import Yard
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import LoadedModel, infer_signature, load_model, save_model
from modelyard.optimize._convert import optimize_graph, to_onnx
from tests.flavors.conftest import OPERATOR
from tests.optimize.models import DigitsMLP

X, Y = make_classification(300, 8, n_informative=5, n_classes=3, random_state=0)
XR, YR = make_regression(300, 8, noise=1.0, random_state=0)


class TwoInputs(torch.nn.Module):
    """A module called with keyword arguments (a dict of arrays)."""

    def __init__(self) -> None:
        super().__init__()
        self.left = torch.nn.Linear(3, 2)
        self.right = torch.nn.Linear(4, 2)

    def forward(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        return self.left(left) + self.right(right)


class Untraceable(torch.nn.Module):
    """A module that leaves torch for NumPy, which no exporter can trace."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.sort(x.numpy(), axis=1))


def _pair(tmp_path: Path, model: Any, x: Any, **options: Any) -> tuple[LoadedModel, LoadedModel]:
    """The parent as saved by its flavor, and its ONNX graph as saved by the ONNX flavor."""
    example = x if isinstance(x, dict) else x[:5]
    save_model(model, tmp_path / "parent", input_example=example, **options)
    parent = load_model(tmp_path / "parent", trust=OPERATOR)
    save_model(to_onnx(parent), tmp_path / "onnx", input_example=example)
    return parent, load_model(tmp_path / "onnx")


def _fitted(model: Any, x: Any, y: Any) -> Any:
    # One thread: OpenMP's spinning threads crawl on a shared machine with two cores.
    with threadpool_limits(limits=1):
        return model.fit(x, y)


def _rows(x: Any, count: int) -> Any:
    return x.iloc[:count] if isinstance(x, pd.DataFrame) else x[:count]


def _check_labels(parent: LoadedModel, child: LoadedModel, x: Any) -> None:
    """Labels equal (dtype too) on >= 99% of rows, probabilities within float32 tolerance,
    at batch 1 and batch 64."""
    for count in (1, 64):
        expected, answer = parent.predict(_rows(x, count)), child.predict(_rows(x, count))
        assert list(answer) == ["output-0", "probabilities"]
        labels = answer["output-0"]
        strings = {labels.dtype.kind, expected.dtype.kind} <= set("OU")  # ONNX's are objects
        assert labels.dtype == expected.dtype or strings
        assert np.mean(labels == expected) >= 0.99
        probabilities = answer["probabilities"]
        assert probabilities.dtype == np.float32
        np.testing.assert_allclose(
            probabilities, _probabilities(parent, _rows(x, count)), atol=1e-4
        )


def _probabilities(parent: LoadedModel, x: Any) -> Any:
    native = parent.native
    if hasattr(native, "predict_proba"):
        return native.predict_proba(x)
    return parent.flavor.predict(native, x, {**parent.info.settings, "method": "predict_proba"})


@pytest.mark.parametrize(
    "model",
    [
        make_pipeline(StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0),
        GradientBoostingClassifier(n_estimators=10, random_state=0),
        HistGradientBoostingClassifier(max_iter=10, random_state=0),
        xgboost.XGBClassifier(n_estimators=10, max_depth=3),
        lightgbm.LGBMClassifier(n_estimators=10, verbose=-1),
    ],
    ids=lambda model: type(model).__name__,
)
def test_classifiers_answer_as_their_parent(tmp_path: Path, model: Any) -> None:
    parent, child = _pair(tmp_path, _fitted(model, X, Y), X)
    _check_labels(parent, child, X)
    # The inputs are the parent's: the same request works, float64 as before.
    assert child.signature is not None and parent.signature is not None
    assert child.signature.inputs == parent.signature.inputs


@pytest.mark.parametrize(
    "model",
    [
        Ridge(),
        RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0),
        HistGradientBoostingRegressor(max_iter=10, random_state=0),
        xgboost.XGBRegressor(n_estimators=10, max_depth=3),
        lightgbm.LGBMRegressor(n_estimators=10, verbose=-1),
    ],
    ids=lambda model: type(model).__name__,
)
def test_regressors_answer_as_their_parent(tmp_path: Path, model: Any) -> None:
    parent, child = _pair(tmp_path, _fitted(model, XR, YR), XR)
    for count in (1, 64):
        expected, values = parent.predict(XR[:count]), child.predict(XR[:count])
        assert values.dtype == expected.dtype and values.shape == expected.shape
        # float32 inside the graph: relative to the spread of the values.
        np.testing.assert_allclose(values, expected, atol=1e-5 * np.ptp(YR))


@pytest.mark.parametrize(
    "labels",
    [np.array(["cat", "dog", "owl"])[Y], (Y == 1), Y.astype(np.int32), Y.astype(np.float64)],
    ids=["strings", "booleans", "int32", "float64"],
)
def test_labels_keep_their_classes_and_dtype(tmp_path: Path, labels: np.ndarray) -> None:
    parent, child = _pair(tmp_path / "sklearn", _fitted(LogisticRegression(), X, labels), X)
    _check_labels(parent, child, X)
    model = _fitted(lightgbm.LGBMClassifier(n_estimators=5, verbose=-1), X, labels)
    parent, child = _pair(tmp_path / "lightgbm", model, X)
    _check_labels(parent, child, X)


def test_a_predict_proba_version_answers_probabilities(tmp_path: Path) -> None:
    model = LogisticRegression().fit(X, Y)
    parent, child = _pair(tmp_path, model, X, method="predict_proba")
    answer = child.predict(X[:64])
    assert answer.dtype == np.float64 and answer.shape == (64, 3)
    np.testing.assert_allclose(answer, parent.predict(X[:64]), atol=1e-5)


def test_boosters_answer_probabilities_as_they_did(tmp_path: Path) -> None:
    settings = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1}
    binary = xgboost.train(settings, xgboost.DMatrix(X, Y == 1), 5)
    parent, child = _pair(tmp_path / "xgboost", binary, X)
    np.testing.assert_allclose(child.predict(X[:64]), parent.predict(X[:64]), atol=1e-5)
    assert child.predict(X[:1]).shape == (1,)
    settings = {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1}
    multiclass = lightgbm.train(settings, lightgbm.Dataset(X, Y), 5)
    parent, child = _pair(tmp_path / "lightgbm", multiclass, X)
    np.testing.assert_allclose(child.predict(X[:64]), parent.predict(X[:64]), atol=1e-5)


def test_dataframes_keep_one_input_per_column(tmp_path: Path) -> None:
    frame = pd.DataFrame({"size": X[:, 0], "age": X[:, 1], "colour": np.array(["r", "g", "b"])[Y]})
    pipeline = make_pipeline(
        ColumnTransformer(
            [("numbers", StandardScaler(), ["size", "age"]), ("words", OneHotEncoder(), ["colour"])]
        ),
        LogisticRegression(),
    ).fit(frame, Y)
    parent, child = _pair(tmp_path / "columns", pipeline, frame)
    assert [spec.name for spec in child.signature.inputs] == ["size", "age", "colour"]
    _check_labels(parent, child, frame)
    numbers = pd.DataFrame(X[:, :4], columns=["a", "b", "c", "d"])
    model = _fitted(xgboost.XGBClassifier(n_estimators=5, max_depth=3), numbers, Y)
    parent, child = _pair(tmp_path / "frame", model, numbers)
    _check_labels(parent, child, numbers)
    # The parent's own booster keeps its feature names: the converter worked on a copy.
    assert parent.native.get_booster().feature_names == ["a", "b", "c", "d"]
    # Columns named as values inside the converter's graph (its input, a regressor's output).
    taken = pd.DataFrame(XR[:, :2], columns=["features", "variable"])
    parent, child = _pair(tmp_path / "taken", _fitted(Ridge(), taken, YR), taken)
    np.testing.assert_allclose(child.predict(taken), parent.predict(taken), atol=1e-5 * np.ptp(YR))


@pytest.mark.parametrize("options", [{}, {"export": False, "init": {"hidden": 64}}])
def test_torch_modules_export_with_a_dynamic_batch(
    tmp_path: Path, digits_mlp: Any, digits: Any, options: dict[str, Any]
) -> None:
    _, _, x, _ = digits
    parent, child = _pair(tmp_path, digits_mlp, x.astype(np.float64), **options)
    assert child.signature.inputs[0].datatype == "FP64"
    for count in (1, 64):
        np.testing.assert_allclose(child.predict(x[:count]), parent.predict(x[:count]), atol=1e-5)


def test_torch_keyword_inputs_keep_their_names(tmp_path: Path) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    inputs = {"left": rng.random((64, 3), np.float32), "right": rng.random((64, 4), np.float32)}
    parent, child = _pair(tmp_path, TwoInputs().eval(), inputs)
    assert [spec.name for spec in child.signature.inputs] == ["left", "right"]
    np.testing.assert_allclose(child.predict(inputs), parent.predict(inputs), atol=1e-6)


def test_a_registered_version_converts_and_registers_again(yard: Yard) -> None:
    version = yard.log_model(_fitted(RandomForestClassifier(n_estimators=5), X, Y), name="forest",
                             input_example=X[:5])  # fmt: skip
    parent = yard.load_model(version.ref)
    converted = yard.log_model(to_onnx(parent, opset=15), name="forest", input_example=X[:5])
    child = yard.load_model(converted.ref)
    assert child.flavor.name == "onnx"
    assert np.mean(child.predict(X)["output-0"] == parent.predict(X)) >= 0.99


@pytest.mark.parametrize("level", ["basic", "extended", "all"])
def test_graph_optimization_keeps_the_answers(
    tmp_path: Path, digits_mlp: Any, digits: Any, level: str
) -> None:
    _, _, x, _ = digits
    save_model(digits_mlp, tmp_path / "mlp", input_example=x[:5])
    proto = to_onnx(load_model(tmp_path / "mlp"))
    optimized = optimize_graph(proto, level=level)
    if level != "basic":  # fused into ONNX Runtime's own operators
        assert any(node.domain == "com.microsoft" for node in optimized.graph.node)
    save_model(proto, tmp_path / "plain")
    save_model(optimized, tmp_path / level)
    np.testing.assert_allclose(
        load_model(tmp_path / level).predict(x), load_model(tmp_path / "plain").predict(x),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip


def test_graph_optimization_refuses_bad_levels_and_graphs() -> None:
    with pytest.raises(ConfigurationError, match="level must be one of basic, extended, all"):
        optimize_graph(onnx.ModelProto(), level="max")
    node = onnx.helper.make_node("NoSuchOperator", ["x"], ["y"])
    value = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])
    graph = onnx.helper.make_graph([node], "broken", [value], [value])
    with pytest.raises(UnsupportedModel, match="ONNX Runtime cannot load this model"):
        optimize_graph(onnx.helper.make_model(graph))


def test_refuses_what_it_cannot_convert(tmp_path: Path) -> None:
    def loaded(name: str, model: Any, x: Any = X, **options: Any) -> LoadedModel:
        save_model(model, tmp_path / name, input_example=x, **options)
        return load_model(tmp_path / name)

    save_model(Ridge().fit(XR, YR), tmp_path / "unsigned")
    with pytest.raises(UnsupportedModel, match="no signature"):
        to_onnx(load_model(tmp_path / "unsigned"))
    ridge = loaded("ridge", Ridge().fit(XR, YR), XR[:5])
    with pytest.raises(ConfigurationError, match="opset must be an integer from 7"):
        to_onnx(ridge, opset=3)
    proto = loaded("onnx", to_onnx(ridge), XR[:5])
    with pytest.raises(UnsupportedModel, match="onnx versions cannot be converted"):
        to_onnx(proto)
    with pytest.raises(UnsupportedModel, match="skl2onnx cannot convert KernelRidge"):
        to_onnx(loaded("kernel", KernelRidge().fit(XR, YR), XR[:5]))
    scores = loaded("scores", LogisticRegression().fit(X, Y), X[:5], method="decision_function")
    with pytest.raises(UnsupportedModel, match="answers with decision_function"):
        to_onnx(scores)
    mixed = pd.DataFrame({"size": X[:, 0], "colour": np.array(["r", "g", "b"])[Y]})
    encoder = OneHotEncoder(sparse_output=False).fit(mixed)
    with pytest.raises(UnsupportedModel, match="mix strings and numbers"):
        to_onnx(loaded("mixed", encoder, mixed.iloc[:5], method="transform"))
    # A signature of two arrays (a tuple) is no matrix a tree library takes.
    two = ridge.info.model_copy(update={"signature": infer_signature((XR[:5], XR[:5]), YR[:5])})
    with pytest.raises(UnsupportedModel, match="take one matrix"):
        to_onnx(LoadedModel(ridge.flavor, ridge.native, two, ridge.folder))


@pytest.mark.parametrize(
    "booster",
    [
        lambda: xgboost.train({"objective": "multi:softmax", "num_class": 3, "nthread": 1},
                              xgboost.DMatrix(X, Y), 3),
        lambda: lightgbm.train({"objective": "multiclassova", "num_class": 3, "verbose": -1,
                                "num_threads": 1}, lightgbm.Dataset(X, Y), 3),
    ],
    ids=["xgboost-softmax", "lightgbm-one-vs-all"],
)  # fmt: skip
def test_refuses_graphs_that_answer_otherwise(tmp_path: Path, booster: Any) -> None:
    """The converters take these objectives for others: the check on the example catches it."""
    save_model(booster(), tmp_path / "booster", input_example=X[:5])
    with pytest.raises(UnsupportedModel, match="Booster answers its input example otherwise"):
        to_onnx(load_model(tmp_path / "booster"))


def test_refuses_torch_versions_it_cannot_export(tmp_path: Path) -> None:
    from modelyard.optimize._torch_steps import quantize_int8

    x = np.random.default_rng(0).random((5, 64), np.float32)
    save_model(quantize_int8(DigitsMLP(hidden=8).eval()), tmp_path / "int8", input_example=x,
               init={"hidden": 8})  # fmt: skip
    with pytest.raises(UnsupportedModel, match="int8 torch version cannot be exported"):
        to_onnx(load_model(tmp_path / "int8", trust=OPERATOR))

    frame = pd.DataFrame(x[:, :3], columns=["a", "b", "c"])
    save_model(DigitsMLP(inputs=3, hidden=4).eval(), tmp_path / "frame", input_example=frame)
    with pytest.raises(UnsupportedModel, match="torch versions that take a DataFrame"):
        to_onnx(load_model(tmp_path / "frame"))

    save_model(Untraceable(), tmp_path / "numpy", input_example=x, export=False)
    with pytest.raises(UnsupportedModel, match="torch.onnx cannot convert Untraceable"):
        to_onnx(load_model(tmp_path / "numpy", trust=OPERATOR))
