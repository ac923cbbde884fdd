"""ONNX quantization on its own: int8 (dynamic, and static with the caller's calibration data)
and float16 of the digits MLP exported from torch keep its accuracy and shrink it; graphs they
cannot help, and bad calibration data, are refused with typed errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.neural_network import MLPClassifier
from threadpoolctl import threadpool_limits

from modelyard.errors import ConfigurationError, InvalidInput, UnsupportedModel
from modelyard.flavors import load_model, save_model
from modelyard.optimize._convert import to_onnx
from modelyard.optimize._onnx_quantize import float16, quantize_dynamic, quantize_static


@pytest.fixture(scope="module")
def mlp_graph(digits_mlp: Any, digits: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The digits MLP as an ONNX graph (Linear layers become Gemm)."""
    x, _, _, _ = digits
    folder = tmp_path_factory.mktemp("mlp") / "torch"
    save_model(digits_mlp, folder, input_example=x[:5])
    return to_onnx(load_model(folder))


@pytest.fixture(scope="module")
def forest_graph(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A random forest as an ONNX graph: a TreeEnsembleClassifier, which no step can help."""
    x, y = make_classification(100, 4, random_state=0)
    folder = tmp_path_factory.mktemp("forest") / "sklearn"
    with threadpool_limits(limits=1):
        save_model(RandomForestClassifier(n_estimators=3).fit(x, y), folder, input_example=x[:5])
    return to_onnx(load_model(folder))


def _served(tmp_path: Path, proto: Any, x: np.ndarray) -> np.ndarray:
    """What the ONNX flavor answers with `proto` saved as a version's folder."""
    folder = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
    save_model(proto, folder, input_example=x[:5])
    return np.asarray(load_model(folder).predict(x))


def _accuracy(tmp_path: Path, proto: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(_served(tmp_path, proto, x).argmax(axis=1) == y))


def _file_bytes(proto: Any) -> int:
    return len(proto.SerializeToString())


@pytest.mark.parametrize("per_channel", [False, True])
def test_dynamic_int8_keeps_accuracy_and_shrinks(
    tmp_path: Path, mlp_graph: Any, digits: Any, per_channel: bool
) -> None:
    _, _, x, y = digits
    before = mlp_graph.SerializeToString()
    quantized = quantize_dynamic(mlp_graph, per_channel=per_channel)
    assert mlp_graph.SerializeToString() == before  # the graph given is left alone
    assert "MatMulInteger" in {node.op_type for node in quantized.graph.node}
    assert _file_bytes(quantized) < _file_bytes(mlp_graph) / 2
    parent = _accuracy(tmp_path, mlp_graph, x, y)
    assert abs(_accuracy(tmp_path, quantized, x, y) - parent) <= 0.01


@pytest.mark.parametrize(
    ("calibration", "method", "per_channel"),
    [("array", "minmax", False), ("dicts", "percentile", True), ("dict", "entropy", False)],
)
def test_static_int8_with_calibration_keeps_accuracy_and_shrinks(
    tmp_path: Path, mlp_graph: Any, digits: Any, calibration: str, method: str, per_channel: bool
) -> None:
    train, _, x, y = digits
    data: Any = {
        "array": train[:300],
        "dicts": [{"input-0": train[start : start + 50]} for start in range(0, 300, 50)],
        "dict": {"input-0": train[:300].astype(np.float64)},  # cast as the flavor would
    }[calibration]
    quantized = quantize_static(mlp_graph, data, per_channel=per_channel, method=method)
    ops = {node.op_type for node in quantized.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ format
    assert _file_bytes(quantized) < _file_bytes(mlp_graph) / 2
    parent = _accuracy(tmp_path, mlp_graph, x, y)
    assert abs(_accuracy(tmp_path, quantized, x, y) - parent) <= 0.01


def test_float16_halves_the_weights_and_keeps_the_answers(
    tmp_path: Path, mlp_graph: Any, digits: Any
) -> None:
    _, _, x, _ = digits
    half = float16(mlp_graph)

    def weight_bytes(proto: Any) -> int:
        return sum(len(tensor.raw_data) for tensor in proto.graph.initializer)

    assert weight_bytes(half) == weight_bytes(mlp_graph) // 2
    for old, new in [(mlp_graph.graph.input, half.graph.input),
                     (mlp_graph.graph.output, half.graph.output)]:  # fmt: skip
        assert [value.type for value in old] == [value.type for value in new]
    np.testing.assert_allclose(
        _served(tmp_path, half, x), _served(tmp_path, mlp_graph, x), atol=0.05
    )


def test_float64_inputs_and_ai_onnx_ml_graphs_quantize(tmp_path: Path, digits: Any) -> None:
    """A scikit-learn MLP: a float64 input cast inside the graph, and ai.onnx.ml operators
    (ArrayFeatureExtractor, for the labels) after its MatMuls."""
    train, labels, x, y = digits
    with threadpool_limits(limits=1), pytest.warns(UserWarning, match="Stochastic Optimizer"):
        mlp = MLPClassifier((32,), max_iter=30, random_state=0).fit(train, labels)
    save_model(mlp, tmp_path / "sklearn", input_example=train[:5].astype(np.float64))
    graph = to_onnx(load_model(tmp_path / "sklearn"))

    def accuracy(proto: Any, name: str) -> float:
        save_model(proto, tmp_path / name, input_example=x[:5])
        return float(np.mean(load_model(tmp_path / name).predict(x)["output-0"] == y))

    parent = accuracy(graph, "float32")
    assert accuracy(quantize_dynamic(graph), "dynamic") >= parent - 0.01
    assert accuracy(quantize_static(graph, train[:200]), "static") >= parent - 0.01
    assert accuracy(float16(graph), "float16") >= parent - 0.01


def test_gemm_variants_quantize_dynamically(tmp_path: Path) -> None:
    """Gemm with scaled, untransposed weights and a scaled bias, and without a bias."""
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(8, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    helper = onnx.helper
    nodes = [
        helper.make_node("Gemm", ["x", "w", "b"], ["h"], alpha=0.5, beta=2.0),
        helper.make_node("Gemm", ["h", "v"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "gemms",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 3])],
        [onnx.numpy_helper.from_array(weight, "w"), onnx.numpy_helper.from_array(bias, "b"),
         onnx.numpy_helper.from_array(rng.normal(size=(3, 4)).astype(np.float32), "v")],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    quantized = quantize_dynamic(proto)
    assert "Gemm" not in {node.op_type for node in quantized.graph.node}
    x = rng.normal(size=(16, 8)).astype(np.float32)
    np.testing.assert_allclose(  # 7-bit weights (reduce_range): within 2% of outputs up to 8
        _served(tmp_path, quantized, x), _served(tmp_path, proto, x), atol=0.15
    )


@pytest.mark.parametrize(("rows", "columns"), [(3, 8), (4, 16), (8, 16), (12, 33)])
def test_narrow_layers_keep_their_answers_on_every_cpu(
    tmp_path: Path, rows: int, columns: int
) -> None:
    """On x86 CPUs without VNNI, ONNX Runtime's uint8 x int8 kernels saturate in int16 with
    full-range int8 weights: these layers answered 20-60% off before `reduce_range`."""
    rng = np.random.default_rng(1)
    weight = rng.normal(size=(rows, columns)).astype(np.float32)
    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "narrow",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", rows])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", columns])],
        [onnx.numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(size=(16, rows)).astype(np.float32)
    error = np.abs(_served(tmp_path, quantize_dynamic(proto), x) - x @ weight).max()
    assert error <= 0.05 * np.abs(x @ weight).max()


def test_refuses_graphs_it_cannot_help(forest_graph: Any) -> None:
    with pytest.raises(UnsupportedModel, match="dynamic int8 would change nothing.*TreeEnsemble"):
        quantize_dynamic(forest_graph)
    with pytest.raises(UnsupportedModel, match="static int8 would change nothing"):
        quantize_static(forest_graph, np.zeros((4, 4)))
    with pytest.raises(UnsupportedModel, match="float16 would change no weight"):
        float16(forest_graph)


def test_refuses_a_graph_that_quantizes_to_nothing() -> None:
    """A MatMul of two inputs has no weight to store as int8."""
    helper = onnx.helper
    values = [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, [2, 2]) for n in "aby"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "product",
                              values[:2], values[2:])  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedModel, match="dynamic int8 would change nothing.*MatMul"):
        quantize_dynamic(proto)


@pytest.mark.parametrize(
    ("calibration", "problem"),
    [
        ([], "calibration data is empty"),
        (np.zeros((0, 64), np.float32), "has no rows"),
        ({"input-0": np.zeros((0, 64), np.float32)}, "has no rows"),
        (np.zeros((10, 63), np.float32), r"shape \[10, 63\]; the model takes \[-1, 64\]"),
        ([np.zeros((10, 64)), np.zeros((10, 8))], r"shape \[10, 8\]"),
        (np.zeros(64, np.float32), r"shape \[64, 1\]"),  # a column, for the flavor
        (np.float32(1.0), r"shape \[\]"),
        ({"pixels": np.zeros((10, 64))}, "missing 'input-0'; unknown 'pixels'"),
        (np.full((10, 64), "x"), "input 'input-0' must be FP32, got BYTES"),
    ],
)
def test_refuses_bad_calibration_data(mlp_graph: Any, calibration: Any, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem):
        quantize_static(mlp_graph, calibration)


def test_refuses_an_unknown_calibration_method(mlp_graph: Any) -> None:
    with pytest.raises(ConfigurationError, match="method must be one of minmax, entropy"):
        quantize_static(mlp_graph, np.zeros((4, 64)), method="kl")


def test_histogram_methods_need_batches_alike(tmp_path: Path) -> None:
    """Sequences of different lengths calibrate with minmax; the histogram methods, which
    stack every batch into one array, refuse them."""
    helper = onnx.helper
    weight = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "sequences",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", "T", 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", "T", 3])],
        [onnx.numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    batches = [np.ones((2, 5, 4), np.float32), np.ones((2, 6, 4), np.float32)]
    quantized = quantize_static(proto, batches)
    assert _served(tmp_path, quantized, batches[0]).shape == (2, 5, 3)
    with pytest.raises(InvalidInput, match="batches of input 'x' differ in shape beyond"):
        quantize_static(proto, batches, method="entropy")


def test_float16_clips_weights_beyond_its_range_quietly() -> None:
    helper = onnx.helper
    weight = np.array([[1e5, 0.5], [-1e5, 1e-9]], np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])], "large",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["N", 2])],
        [onnx.numpy_helper.from_array(weight, "w")],
    )  # fmt: skip
    half = float16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    clipped = onnx.numpy_helper.to_array(half.graph.initializer[0])
    assert clipped.dtype == np.float16
    np.testing.assert_allclose(clipped, [[1e4, 0.5], [-1e4, 1e-7]], rtol=1e-3, atol=1e-7)
