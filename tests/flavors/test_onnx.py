from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pandas as pd
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import convert_model_to_external_data

from modelyard.diff import summary_changes
from modelyard.errors import ConfigurationError, InvalidInput, UnsupportedModel
from modelyard.flavors import _onnx, load_model, save_model
from modelyard.flavors._catalog import flavor_for
from tests.flavors.conftest import predict_in_fresh_process

ROOT = Path(__file__).resolve().parents[2]
_ = _onnx  # registers the flavor
FLAVOR = _onnx.OnnxFlavor()
CPU = {"providers": ["CPUExecutionProvider"]}


def mlp(*, opset: int = 17, hidden: int = 3) -> onnx.ModelProto:
    """relu(x @ W + B): one input `x` of shape [batch, 4], one output `y`."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(size=(4, hidden)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=hidden).astype(np.float32), "B")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"]),
        helper.make_node("Add", ["h", "B"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])],
        [weights, bias],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def two_inputs() -> onnx.ModelProto:
    """Inputs `age` (float) and `count` (int64), each [batch, 1]; outputs `score` and `positive`."""
    weights = numpy_helper.from_array(np.array([[0.5, -1.0], [0.25, 2.0]], np.float32), "W")
    nodes = [
        helper.make_node("Cast", ["count"], ["count_float"], to=TensorProto.FLOAT),
        helper.make_node("Concat", ["age", "count_float"], ["both"], axis=1),
        helper.make_node("MatMul", ["both", "W"], ["score"]),
        helper.make_node("Relu", ["score"], ["positive"]),
    ]
    graph = helper.make_graph(
        nodes, "two",
        [helper.make_tensor_value_info("age", TensorProto.FLOAT, [None, 1]),
         helper.make_tensor_value_info("count", TensorProto.INT64, [None, 1])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 2]),
         helper.make_tensor_value_info("positive", TensorProto.FLOAT, [None, 2])],
        [weights],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def features(rows: int = 20) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(rows, 4))


def test_round_trip_in_a_fresh_process(tmp_path: Path) -> None:
    model, batch = mlp(), features()
    info = save_model(model, tmp_path / "model", input_example=batch[:5])
    assert info.flavor == "onnx"
    assert info.settings == {"format": "onnx", "file": "model.onnx", **CPU}
    assert {file.name for file in (tmp_path / "model").iterdir()} == {
        "model.onnx", "modelyard.json", "input_example.npz"
    }  # fmt: skip
    expected = FLAVOR.predict(model, batch, CPU)
    got = predict_in_fresh_process(tmp_path / "model", batch, tmp_path)
    np.testing.assert_array_equal(got, expected)
    weights, bias = (numpy_helper.to_array(t) for t in model.graph.initializer)
    np.testing.assert_allclose(got, np.maximum(batch.astype(np.float32) @ weights + bias, 0),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_signature_keeps_the_example_types_and_a_variable_batch(tmp_path: Path) -> None:
    info = save_model(mlp(), tmp_path / "model", input_example=features(5))
    assert info.signature is not None
    assert [(s.name, s.datatype, s.shape) for s in info.signature.inputs] == [
        ("input-0", "FP64", [-1, 4])
    ]
    assert [(s.datatype, s.shape) for s in info.signature.outputs] == [("FP32", [-1, 3])]


def test_dataframe_for_a_single_input_is_one_array(tmp_path: Path) -> None:
    model = mlp()
    frame = pd.DataFrame(features(), columns=["a", "b", "c", "d"])
    save_model(model, tmp_path / "model", input_example=frame[:5])
    got = predict_in_fresh_process(tmp_path / "model", frame, tmp_path)
    np.testing.assert_array_equal(got, FLAVOR.predict(model, frame.to_numpy(), CPU))


def test_two_inputs_by_name_with_two_outputs_in_a_fresh_process(tmp_path: Path) -> None:
    model = two_inputs()
    rng = np.random.default_rng(2)
    batch: dict[str, np.ndarray] = {
        "age": rng.normal(size=(6, 1)),
        "count": rng.integers(0, 9, (6, 1), dtype=np.int32),
    }
    info = save_model(model, tmp_path / "model", input_example=batch)
    assert info.signature is not None and info.signature.content_type == "dict"
    assert [(s.name, s.datatype) for s in info.signature.outputs] == [
        ("score", "FP32"), ("positive", "FP32")
    ]  # fmt: skip
    got = predict_in_fresh_process(tmp_path / "model", batch, tmp_path)
    both = np.hstack([batch["age"], batch["count"]]).astype(np.float32)
    expected = both @ numpy_helper.to_array(model.graph.initializer[0])
    assert list(got) == ["score", "positive"]
    np.testing.assert_array_equal(got["score"], expected)
    np.testing.assert_array_equal(got["positive"], np.maximum(expected, 0))


def test_dataframe_columns_feed_inputs_of_the_same_name(tmp_path: Path) -> None:
    model = two_inputs()
    frame = pd.DataFrame({"count": np.array([1, 4, 2]), "age": np.array([0.5, -2.0, 3.0])})
    info = save_model(model, tmp_path / "model", input_example=frame)
    assert info.signature is not None and info.signature.content_type == "pd"
    assert [(s.name, s.shape) for s in info.signature.inputs] == [("count", [-1]), ("age", [-1])]
    got = predict_in_fresh_process(tmp_path / "model", frame, tmp_path)
    by_name = {"age": frame[["age"]].to_numpy(), "count": frame[["count"]].to_numpy()}
    np.testing.assert_array_equal(got["score"], FLAVOR.predict(model, by_name, CPU)["score"])
    positional = FLAVOR.predict(model, (by_name["age"], by_name["count"]), CPU)
    np.testing.assert_array_equal(got["positive"], positional["positive"])


def test_inputs_that_do_not_fit_are_refused_by_name() -> None:
    model = two_inputs()
    age, count = np.ones((2, 1)), np.ones((2, 1), np.int64)
    with pytest.raises(InvalidInput, match="input 'count' must be INT64, got FP64"):
        FLAVOR.predict(model, {"age": age, "count": count + 0.5}, CPU)
    with pytest.raises(InvalidInput, match="missing 'count'; unknown 'counts'"):
        FLAVOR.predict(model, {"age": age, "counts": count}, CPU)
    with pytest.raises(InvalidInput, match=r"takes 2 inputs \(age, count\): pass a dict"):
        FLAVOR.predict(model, age, CPU)
    with pytest.raises(InvalidInput, match="takes 2 inputs, got 1"):
        FLAVOR.predict(model, (age,), CPU)
    with pytest.raises(InvalidInput, match="refused its inputs"):
        FLAVOR.predict(mlp(), np.ones((2, 5), np.float32), CPU)


def test_invalid_model_is_refused_with_the_checkers_complaint(tmp_path: Path) -> None:
    model = mlp()
    model.graph.node[1].input[0] = "nowhere"
    with pytest.raises(UnsupportedModel, match="checker refuses this model: .*'nowhere'"):
        save_model(model, tmp_path / "model")
    assert not (tmp_path / "model" / "model.onnx").exists()


def test_model_onnx_runtime_cannot_run_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")], "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
    )  # fmt: skip
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    with pytest.raises(UnsupportedModel, match="ONNX Runtime cannot load .*Frobnicate"):
        save_model(model, tmp_path / "model", input_example=features(2))


def test_external_data_is_refused(tmp_path: Path) -> None:
    model = mlp()
    convert_model_to_external_data(model, size_threshold=0, location="weights.bin")
    with pytest.raises(UnsupportedModel, match=r"external data files \(W, B\)"):
        save_model(model, tmp_path / "model")


def test_loads_as_an_inference_session_on_the_providers_this_machine_has(tmp_path: Path) -> None:
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    info = save_model(mlp(), tmp_path / "model", providers=providers)
    assert info.settings["providers"] == providers
    session = load_model(tmp_path / "model").native
    assert isinstance(session, onnxruntime.InferenceSession)
    available = onnxruntime.get_available_providers()
    assert session.get_providers() == [p for p in providers if p in available]


def test_unknown_options_and_providers_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="unknown onnx options: colour"):
        save_model(mlp(), tmp_path / "a", colour="red")
    with pytest.raises(ConfigurationError, match="known providers: .*CPUExecutionProvider"):
        save_model(mlp(), tmp_path / "b", providers=["TurboProvider"])
    with pytest.raises(ConfigurationError, match="must be a list"):
        save_model(mlp(), tmp_path / "c", providers="CPUExecutionProvider")


def test_describe_counts_nodes_and_initializers() -> None:
    summary = FLAVOR.describe(mlp())
    assert summary == {
        "opset": {"ai.onnx": 17},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 3]}],
        "nodes": 3,
        "initializers": 2,
    }
    assert FLAVOR.describe(two_inputs())["inputs"][1] == {
        "name": "count", "datatype": "INT64", "shape": [-1, 1]
    }  # fmt: skip


def test_changes_between_two_models_show_in_summary_changes(tmp_path: Path) -> None:
    a = save_model(mlp(), tmp_path / "a").summary
    b = save_model(mlp(opset=18, hidden=5), tmp_path / "b").summary
    changes = {key for key, _, _ in summary_changes(a, b)}
    assert changes == {"opset.ai.onnx", "outputs"}


def test_flavor_is_picked_for_model_protos() -> None:
    assert flavor_for(mlp()).name == "onnx"
    assert not FLAVOR.matches(mlp().graph)
    assert not FLAVOR.matches(np.zeros(3))
