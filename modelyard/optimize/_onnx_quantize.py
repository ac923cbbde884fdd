"""Quantization of ONNX graphs: int8 with ONNX Runtime (dynamic, or static in QDQ format with
calibration inputs the caller passes) and float16 with onnxconverter-common.

Each returns a new `onnx.ModelProto` (the one given is left alone) whose inputs and outputs keep
their names and types, or refuses with `UnsupportedModel` a graph it would not change: tree
ensembles and the other ai.onnx.ml operators have neither int8 nor float16 kernels.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, InvalidInput, UnsupportedModel
from modelyard.flavors import onnx_tools

METHODS = ("minmax", "entropy", "percentile", "distribution")
_INT8 = (2, 3)  # onnx.TensorProto.UINT8, INT8
_FLOAT16 = 10  # onnx.TensorProto.FLOAT16
_FLOAT32 = 1
# Operators with weights that ONNX Runtime quantizes (Gemm dynamically once made a MatMul).
_WEIGHTED = ("Attention", "Conv", "ConvTranspose", "Gemm", "LSTM", "MatMul")


def quantize_dynamic(model: Any, *, per_channel: bool = False, scratch: Path | None = None) -> Any:
    """int8 weights, with activations quantized on the fly at each call (no calibration).
    ONNX Runtime works through files, in a folder made in `scratch` (default: the system's
    temporary directory; `Optimizer` passes one under the home, found again after a crash).

    >>> small = quantize_dynamic(onnx.load("mlp.onnx"))
    """
    quantization = require("onnxruntime.quantization", extra="optimize")
    _check_weighted(model, "dynamic int8")
    prepared = _gemm_as_matmul(_preprocessed(model, scratch=scratch))
    with tempfile.TemporaryDirectory(prefix="modelyard-quantize-", dir=scratch) as private:
        output = Path(private) / "quantized.onnx"  # ONNX Runtime writes the result to a file
        # reduce_range: 7-bit weights. On x86 CPUs without VNNI, ONNX Runtime's uint8 x int8
        # kernels add pairs of products in int16 and saturate (its docs say so): full-range
        # weights gave answers off by 30% there, even for an 8 x 4 layer.
        quantization.quantize_dynamic(
            prepared, output, per_channel=per_channel, reduce_range=True,
            weight_type=quantization.QuantType.QInt8,
        )  # fmt: skip
        return _changed(_load(output), "dynamic int8")


def quantize_static(
    model: Any,
    calibration: Any,
    *,
    per_channel: bool = False,
    method: str = "minmax",
    scratch: Path | None = None,
) -> Any:
    """int8 weights and activations (QDQ format), with activation ranges measured by running
    the graph on `calibration`: an array (for a graph with one input), a dict of arrays by input
    name, or a list of either (one batch each). `method` picks how ranges are chosen from what
    was seen: minmax, entropy, percentile or distribution. `scratch` as for `quantize_dynamic`.

    >>> small = quantize_static(proto, X_train[:500], method="percentile")
    """
    if method not in METHODS:
        raise ConfigurationError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    quantization = require("onnxruntime.quantization", extra="optimize")
    _check_weighted(model, "static int8")
    batches = _calibration_batches(model, calibration)
    if method != "minmax" and len(batches) > 1:
        batches = _joined(batches)
    prepared = _preprocessed(model, scratch=scratch)
    methods = quantization.CalibrationMethod
    chosen = {"minmax": methods.MinMax, "entropy": methods.Entropy,
              "percentile": methods.Percentile, "distribution": methods.Distribution}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="modelyard-quantize-", dir=scratch) as private:
        output = Path(private) / "quantized.onnx"
        quantization.quantize_static(
            prepared, output, _Batches(batches), quant_format=quantization.QuantFormat.QDQ,
            per_channel=per_channel, calibrate_method=chosen[method],
        )  # fmt: skip
        return _changed(_load(output), "static int8")


def float16(model: Any) -> Any:
    """Weights and computation in float16; the inputs and outputs keep their types (casts are
    added at the edges). ai.onnx.ml operators (and a few others, such as TopK and Range) stay in
    float32. Weights beyond ±10,000, or nearer zero than 1e-7, are clipped to those bounds, as
    onnxconverter-common does by default to keep activations within float16's range."""
    converter = require("onnxconverter_common.float16", extra="optimize")
    with warnings.catch_warnings():
        # Weights beyond float16's range are clipped to it, with one warning per tensor.
        warnings.filterwarnings("ignore", "the float32 number", UserWarning)
        result = converter.convert_float_to_float16(_copy(model), keep_io_types=True)
    _retarget_casts(result.graph)
    if not any(tensor.data_type == _FLOAT16 for tensor in result.graph.initializer):
        raise UnsupportedModel(
            "float16 would change no weight of this graph: it holds no float32 weights that "
            f"float16 kernels use ({_operators(model)})"
        )
    return result


def _retarget_casts(graph: Any) -> None:
    """Make Casts to float32 whose output the converter typed float16 cast to float16: it
    retypes values but leaves a Cast's target alone, which ONNX Runtime then refuses."""
    halves = {
        value.name for value in graph.value_info if value.type.tensor_type.elem_type == _FLOAT16
    }
    for node in graph.node:
        if node.op_type == "Cast" and node.output[0] in halves:
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == _FLOAT32:
                    attribute.i = _FLOAT16


def _calibration_batches(model: Any, calibration: Any) -> list[dict[str, np.ndarray[Any, Any]]]:
    """The caller's calibration data as batches by input name, each checked against the graph's
    inputs (names, element types, ranks and fixed sizes)."""
    specs = onnx_tools.session(model.SerializeToString(), [onnx_tools.CPU]).get_inputs()
    items = calibration if isinstance(calibration, list) else [calibration]
    if not items:
        raise InvalidInput("the calibration data is empty: pass at least one batch of inputs")
    batches = []
    for item in items:
        feeds = onnx_tools.feeds(specs, item)
        for spec in specs:
            _check_shape(spec, feeds[spec.name])
        batches.append(feeds)
    return batches


class _Batches:
    """ONNX Runtime's CalibrationDataReader (which it recognizes by `get_next`)."""

    def __init__(self, batches: list[dict[str, np.ndarray[Any, Any]]]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, np.ndarray[Any, Any]] | None:
        return next(self._batches, None)


def _joined(
    batches: list[dict[str, np.ndarray[Any, Any]]],
) -> list[dict[str, np.ndarray[Any, Any]]]:
    """The batches as one: ONNX Runtime's histogram calibrators stack what each batch gives
    into one array, which fails for batches of different sizes."""
    joined = {}
    for name in batches[0]:
        try:
            joined[name] = np.concatenate([batch[name] for batch in batches])
        except ValueError:
            raise InvalidInput(
                f"the calibration batches of input {name!r} differ in shape beyond their "
                "rows; pass batches alike, or use method='minmax'"
            ) from None
    return [joined]


def _check_shape(spec: Any, array: np.ndarray[Any, Any]) -> None:
    expected = [size if isinstance(size, int) else -1 for size in spec.shape or []]
    fits = all(wanted in (-1, size) for size, wanted in zip(array.shape, expected, strict=False))
    if array.ndim != len(expected) or not fits:
        raise InvalidInput(
            f"calibration input {spec.name!r} has shape {list(array.shape)}; the model takes "
            f"{expected} (-1: any size)"
        )
    if array.ndim and array.shape[0] == 0:
        raise InvalidInput(f"calibration input {spec.name!r} has no rows")


def _preprocessed(model: Any, *, scratch: Path | None) -> Any:
    """The graph after ONNX Runtime's pre-processing for quantization: ONNX shape inference and
    basic optimizations (folding batch norms into convolutions, say), which quantize better."""
    quantization = require("onnxruntime.quantization", extra="optimize")
    onnx = require("onnx", extra="onnx")
    # The optimizer drops the casts converters put after ai.onnx.ml operators, and the quantizer
    # then cannot type the values these produce.
    ml = any(node.domain == "ai.onnx.ml" for node in model.graph.node)
    with tempfile.TemporaryDirectory(prefix="modelyard-quantize-", dir=scratch) as private:
        # Paths, not protos: given a proto, its optimizer step fails on models whose weights are
        # all inline. Symbolic shape inference is skipped: it knows no ai.onnx.ml operator, and
        # on failure leaves a debugging copy of the model in the working directory.
        source, output = Path(private) / "model.onnx", Path(private) / "prepared.onnx"
        onnx.save(model, source)
        quantization.quant_pre_process(
            source, output, skip_symbolic_shape=True, skip_optimization=ml
        )
        return _load(output)


def _gemm_as_matmul(model: Any) -> Any:
    """Gemm nodes with constant weights as MatMul (+ Add): ONNX Runtime quantizes MatMul
    dynamically but has no dynamic int8 kernel for Gemm, which is what a Linear layer becomes."""
    onnx = require("onnx", extra="onnx")
    graph = model.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    nodes = []
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "Gemm" or attributes.get("transA") or node.input[1] not in weights:
            nodes.append(node)
            continue
        weight = onnx.numpy_helper.to_array(weights[node.input[1]])
        weight = weight.T if attributes.get("transB") else weight
        name = f"{node.output[0]}/weight"
        scaled = (weight * attributes.get("alpha", 1.0)).astype(weight.dtype)
        graph.initializer.append(onnx.numpy_helper.from_array(np.ascontiguousarray(scaled), name))
        bias = node.input[2] if len(node.input) > 2 else ""
        product = f"{node.output[0]}/matmul" if bias else node.output[0]
        nodes.append(
            onnx.helper.make_node("MatMul", [node.input[0], name], [product], name=product)
        )
        if bias:
            if attributes.get("beta", 1.0) != 1.0:
                beta = np.array(attributes["beta"], dtype=weight.dtype)
                graph.initializer.append(onnx.numpy_helper.from_array(beta, f"{name}/beta"))
                nodes.append(
                    onnx.helper.make_node(
                        "Mul", [bias, f"{name}/beta"], [f"{name}/c"], name=f"{name}/c"
                    )
                )
                bias = f"{name}/c"
            nodes.append(
                onnx.helper.make_node("Add", [product, bias], [node.output[0]], name=node.name)
            )
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model


def _check_weighted(model: Any, what: str) -> None:
    """Refuse a graph with no operator that int8 has kernels for (tree ensembles, linear
    ai.onnx.ml operators), before any work."""
    floats = {t.name for t in model.graph.initializer if t.data_type == _FLOAT32}
    for node in model.graph.node:
        if node.op_type in _WEIGHTED or (node.op_type == "Gather" and node.input[0] in floats):
            return
    _refuse(model, what)


def _changed(result: Any, what: str) -> Any:
    if not any(tensor.data_type in _INT8 for tensor in result.graph.initializer):
        _refuse(result, what)
    return result


def _refuse(model: Any, what: str) -> None:
    raise UnsupportedModel(
        f"{what} would change nothing in this graph: ONNX Runtime has int8 kernels for "
        f"{', '.join(_WEIGHTED)} and embeddings, not for its operators ({_operators(model)})"
    )


def _operators(model: Any) -> str:
    found = sorted({node.op_type for node in model.graph.node})
    return ", ".join(found[:8]) + (", …" if len(found) > 8 else "")


def _copy(model: Any) -> Any:
    copy = require("onnx", extra="onnx").ModelProto()
    copy.CopyFrom(model)
    return copy


def _load(path: Path) -> Any:
    return require("onnx", extra="onnx").load(str(path))
