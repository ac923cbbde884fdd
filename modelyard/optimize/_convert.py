"""Conversion to ONNX: scikit-learn (skl2onnx), XGBoost and LightGBM (onnxmltools) and PyTorch
(`torch.onnx.export`) versions as `onnx.ModelProto` graphs; and ONNX Runtime's offline graph
optimization.

A converted graph answers the requests its parent answered. Its inputs are the parent's signature:
the same names, datatypes and shapes (one input per column for a DataFrame signature). Its first
output is what the parent's `predict` returned, under the parent's output name and with its
datatype and shape: class labels as scikit-learn gives them, probabilities, or values. A
classifier with `predict_proba` also gets a `probabilities` output, a plain float32 tensor
[N, classes] (no ZipMap). For a graph with several outputs, the ONNX flavor's `predict` returns a
dict of arrays by output name, the first output first; a child registered by
`Optimizer.convert` records that only its parent's outputs make its answer (the flavors' `answer`
setting), so it answers exactly as the parent did.

Precision: the converters compute in float32. A float64 input is cast to float32 inside the graph
(its declared type stays float64), so linear models and scalers agree with scikit-learn to about
1e-6 relative. Trees compare in float32 as scikit-learn's own trees do; histogram gradient
boosting, XGBoost and LightGBM can send a value within float32 rounding of a threshold down the
other branch, which is rare.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import (
    LoadedModel,
    Signature,
    TensorSpec,
    get_flavor,
    torch_tools,
    type_names,
)
from modelyard.optimize._onnx_graphs import (
    Output,
    adapt_inputs,
    expose,
)

LEVELS = ("basic", "extended", "all")
PROBABILITIES = "probabilities"
_DEFAULT_OPSET = 15  # for graphs without one: ONNX Runtime runs it everywhere
_XGBOOST_BOOSTER = "xgboost.core.Booster"
_HIST_GRADIENT_BOOSTING = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


def to_onnx(model: LoadedModel, *, opset: int | None = None) -> Any:
    """The ONNX graph (`onnx.ModelProto`) of a loaded scikit-learn, XGBoost, LightGBM or
    PyTorch version; `opset` is the ONNX opset to target (the converter's default if None).

    >>> proto = to_onnx(yard.load_model("fraud@production"))
    >>> save_model(proto, "fraud-onnx/", input_example=X[:5])
    """
    signature = _signature(model)
    onnx = require("onnx", extra="onnx")
    newest = onnx.defs.onnx_opset_version()
    if opset is not None and (type(opset) is not int or not 7 <= opset <= newest):
        raise ConfigurationError(f"opset must be an integer from 7 to {newest}, not {opset!r}")
    converters = {"sklearn": _from_sklearn, "xgboost": _from_boosting,
                  "lightgbm": _from_boosting, "torch": _from_torch}  # fmt: skip
    kind = model.flavor.name
    if kind not in converters:
        raise UnsupportedModel(
            f"{kind} versions cannot be converted to ONNX; convert scikit-learn, XGBoost, "
            "LightGBM or PyTorch versions"
        )
    proto = converters[kind](model, signature, opset)
    if not any(entry.domain in ("", "ai.onnx") for entry in proto.opset_import):
        # A graph of ai.onnx.ml operators only; the casts and reshapes added need the default.
        proto.opset_import.append(onnx.helper.make_opsetid("", opset or _DEFAULT_OPSET))
    onnx.checker.check_model(proto)
    _check_answers(model, proto)
    return proto


def optimize_graph(model: Any, *, level: str = "extended", scratch: Path | None = None) -> Any:
    """ONNX Runtime's offline graph optimization (`basic`: constant folding and redundant nodes;
    `extended`: fusions into ONNX Runtime's own operators; `all`: also memory layouts for this
    machine's CPU, so the result is best used where it was made). The optimized graph is written
    in a folder made in `scratch` (default: the system's temporary directory)."""
    if level not in LEVELS:
        raise ConfigurationError(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    ort = require("onnxruntime", extra="onnx")
    onnx = require("onnx", extra="onnx")
    levels = ort.GraphOptimizationLevel
    options = ort.SessionOptions()
    options.graph_optimization_level = {"basic": levels.ORT_ENABLE_BASIC,
                                        "extended": levels.ORT_ENABLE_EXTENDED,
                                        "all": levels.ORT_ENABLE_ALL}[level]  # fmt: skip
    options.log_severity_level = 3  # "all" warns that its layouts are hardware-specific: known
    state = ort.capi.onnxruntime_pybind11_state
    with tempfile.TemporaryDirectory(prefix="modelyard-onnx-", dir=scratch) as private:
        # ONNX Runtime writes the optimized graph only to a file.
        options.optimized_model_filepath = str(Path(private) / "optimized.onnx")
        try:
            ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except (state.Fail, state.InvalidGraph, state.InvalidProtobuf, state.NotImplemented) as e:
            raise UnsupportedModel(f"ONNX Runtime cannot load this model: {e}") from None
        return onnx.load(options.optimized_model_filepath)


def _check_answers(model: LoadedModel, proto: Any) -> None:
    """Refuse a graph that answers the version's input example otherwise than the version: the
    converters take some objectives for others without a word (XGBoost's multi:softmax and
    binary:logitraw, LightGBM's multiclassova)."""
    example = model.input_example()
    expected = np.asarray(_first(model.predict(example)))
    answer = np.asarray(_first(get_flavor("onnx").predict(proto, example, {})))
    if expected.dtype.kind == "f" and answer.shape == expected.shape:
        # float32 inside the graph: close, relative to the size of the answers
        atol = 1e-5 * max(1.0, float(np.abs(expected).max(initial=0.0)))
        agrees = np.allclose(answer, expected, rtol=1e-3, atol=atol)
    else:
        agrees = np.array_equal(answer, expected)  # labels, exactly
    if agrees:
        return
    raise UnsupportedModel(
        f"the ONNX graph of this {model.flavor.name} {type(model.native).__qualname__} answers "
        f"its input example otherwise than the version does ({answer[:3].tolist()} instead of "
        f"{expected[:3].tolist()}): the converter does not support its objective or settings"
    )


def _first(answer: Any) -> Any:
    if isinstance(answer, dict):
        return next(iter(answer.values()))
    return answer[0] if isinstance(answer, tuple | list) else answer


# the converters -----------------------------------------------------------------------------------


def _from_sklearn(model: LoadedModel, signature: Signature, opset: int | None) -> Any:
    skl2onnx = require("skl2onnx", extra="optimize")
    native, method = model.native, _method(model, ("predict", "predict_proba", "transform"))
    by_column = signature.content_type == "pd" and _selects_columns(native)
    if by_column:  # a ColumnTransformer picks its columns by name: one input each
        initial = [(spec.name, _tensor_type("skl2onnx", [spec], 1)) for spec in signature.inputs]
    else:
        initial = [("features", _tensor_type("skl2onnx", signature.inputs, _width(signature)))]
    classifier = require("sklearn.base", extra="sklearn").is_classifier(native)
    proto = _convert(
        lambda: skl2onnx.convert_sklearn(
            native, initial_types=initial, target_opset=opset,
            options={id(native): {"zipmap": False}} if classifier else None,
            custom_conversion_functions=_boolean_flags_fix(),
        ), native, "skl2onnx")  # fmt: skip
    initialized = {tensor.name for tensor in proto.graph.initializer}
    # skl2onnx makes names valid identifiers ("input-0" becomes "input_0"): take its own.
    converted = [value.name for value in proto.graph.input if value.name not in initialized]
    adapt_inputs(proto, signature, converted, concat=not by_column)
    outputs = [value.name for value in proto.graph.output]
    probabilities = classifier and hasattr(native, "predict_proba")
    expose(proto, _plan(outputs, signature, method, probabilities=probabilities))
    return proto


def _from_boosting(model: LoadedModel, signature: Signature, opset: int | None) -> Any:
    """XGBoost and LightGBM, through onnxmltools."""
    onnxmltools = require("onnxmltools", extra="optimize")
    native, method = model.native, _method(model, ("predict", "predict_proba"))
    settings = model.info.settings
    initial = [("features", _tensor_type("onnxmltools", signature.inputs, _width(signature)))]
    if model.flavor.name == "xgboost":
        booster = _XGBOOST_BOOSTER in type_names(native)
        if (native if booster else native.get_booster()).feature_names:
            # onnxmltools reads trees that name features f0, f1, …: a DataFrame's names go.
            native = copy.deepcopy(native)
            (native if booster else native.get_booster()).feature_names = None
        convert = lambda: onnxmltools.convert_xgboost(  # noqa: E731
            native, initial_types=initial, target_opset=opset
        )
    else:
        # The flavor loads LightGBM models as Boosters, which know class indices only; a
        # wrapper's classes were recorded at save, and give the labels as its predict did.
        booster = "classes" not in settings
        convert = lambda: onnxmltools.convert_lightgbm(  # noqa: E731
            native, initial_types=initial, target_opset=opset, zipmap=False
        )
    proto = _convert(convert, native, "onnxmltools")
    adapt_inputs(proto, signature, ["features"], concat=True)
    outputs = [value.name for value in proto.graph.output]
    classes = None
    if "classes" in settings:
        classes = np.asarray(settings["classes"], dtype=settings["classes_dtype"])
    # A Booster's predict answers probabilities (or values); a wrapper's, labels.
    expose(proto, _plan(outputs, signature, "predict_proba" if booster else method,
                         classes=classes))  # fmt: skip
    return proto


def _from_torch(model: LoadedModel, signature: Signature, opset: int | None) -> Any:
    torch = require("torch", extra="torch")
    require("onnxscript", extra="optimize")  # what torch.onnx's exporter writes graphs with

    native = model.native
    if "quantized" in model.info.settings:
        raise UnsupportedModel(
            "an int8 torch version cannot be exported to ONNX: convert the float version, then "
            "quantize the ONNX graph"
        )
    if signature.content_type == "pd":
        raise UnsupportedModel("torch versions that take a DataFrame cannot be converted")
    args, kwargs = torch_tools.arguments(model.input_example(), torch_tools.float_dtype(native))
    # Traced at batch 2 with a dynamic first dimension, so that any batch size is accepted.
    args = tuple(torch_tools.batch_of_two(value) for value in args)
    kwargs = {key: torch_tools.batch_of_two(value) for key, value in kwargs.items()}
    batch = {0: torch.export.Dim.DYNAMIC}
    dynamic: Any = {key: batch for key in kwargs} if kwargs else tuple(batch for _ in args)
    names = [spec.name for spec in signature.inputs]
    with warnings.catch_warnings(), quiet_loggers(*_EXPORTER_LOGGERS):
        # torch's exporter calls a pytree API it deprecated itself; and it takes an exported
        # program's module for one in training mode, though its graph was traced in eval mode.
        # Any other warning is noise to whoever converts: a failure raises, named, below.
        warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)`", FutureWarning)
        warnings.filterwarnings("ignore", "Exporting a model while it is in training mode")
        warnings.filterwarnings("ignore", module=r"torch(\.|$)")
        warnings.filterwarnings("ignore", module=r"onnxscript(\.|$)")
        program = _convert(
            lambda: torch.onnx.export(
                native, args, kwargs=kwargs or None, dynamo=True, verbose=False,
                input_names=names, output_names=[spec.name for spec in signature.outputs],
                opset_version=opset, dynamic_shapes=dynamic,
            ), native, "torch.onnx")  # fmt: skip
    proto = program.model_proto
    adapt_inputs(proto, signature, names, concat=False)
    return proto


# The exporter logs its progress and optional packages it did without ("torchvision is not
# installed. Skipping torchvision::nms") at WARNING: on a terminal that reads as trouble.
_EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript")


@contextlib.contextmanager
def quiet_loggers(*names: str) -> Iterator[None]:
    """Only errors from these loggers (and their children) while the block runs."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _convert(convert: Callable[[], Any], native: Any, tool: str) -> Any:
    try:
        return convert()
    except Exception as error:  # converters fail in many ways, each with its own type
        message = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise UnsupportedModel(
            f"{tool} cannot convert {type(native).__qualname__} to ONNX: "
            f"{type(error).__name__}: {message}"
        ) from error


def _boolean_flags_fix() -> dict[type, Callable[..., None]]:
    """skl2onnx's own converters for histogram gradient boosting, given a container that turns
    Python booleans in integer-list attributes into ints: skl2onnx 1.20 writes `False` in
    `nodes_missing_value_tracks_true`, which protobuf 7 refuses as an int."""
    ensemble = require("sklearn.ensemble", extra="sklearn")
    registration = require("skl2onnx.common._registration", extra="optimize")
    operators = require("skl2onnx._supported_operators", extra="optimize")
    fixed = {}
    for name in _HIST_GRADIENT_BOOSTING:
        cls = getattr(ensemble, name)
        converter = registration.get_converter(operators.sklearn_operator_name_map[cls])
        fixed[cls] = lambda scope, operator, container, convert=converter: convert(
            scope, operator, _IntFlags(container)
        )
    return fixed


class _IntFlags:
    """A skl2onnx container whose `add_node` passes boolean list items as ints."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attributes: Any) -> Any:
        for key, value in attributes.items():
            if isinstance(value, list) and any(isinstance(item, bool) for item in value):
                attributes[key] = [int(item) if isinstance(item, bool) else item for item in value]
        return self._container.add_node(*args, **attributes)


# what the converters are given --------------------------------------------------------------------


def _signature(model: LoadedModel) -> Signature:
    if model.signature is None or not model.signature.outputs:
        raise UnsupportedModel(
            "this version has no signature, which the ONNX graph's inputs and outputs follow: "
            "log it with an input_example"
        )
    return model.signature


def _method(model: LoadedModel, supported: tuple[str, ...]) -> str:
    method = str(model.info.settings.get("method", "predict"))
    if method not in supported:
        raise UnsupportedModel(
            f"a {model.flavor.name} version that answers with {method} cannot be converted to "
            f"ONNX; convert one that answers with {' or '.join(supported)}"
        )
    return method


def _selects_columns(native: Any) -> bool:
    transformer = require("sklearn.compose", extra="sklearn").ColumnTransformer
    steps = getattr(native, "steps", None)
    return isinstance(steps[0][1] if steps else native, transformer)


def _width(signature: Signature) -> int:
    """Columns of the one matrix a model takes: the input's second dimension, or the number of
    DataFrame columns."""
    if signature.content_type == "pd":
        return len(signature.inputs)
    shape = signature.inputs[0].shape
    if signature.content_type != "np" or len(signature.inputs) != 1 or len(shape) != 2:
        raise UnsupportedModel(
            "only models that take one matrix [rows, columns] (or a DataFrame) can be converted "
            f"to ONNX; this one takes {', '.join(f'{s.name} {s.shape}' for s in signature.inputs)}"
        )
    return shape[1]


def _tensor_type(tool: str, specs: list[TensorSpec], width: int) -> Any:
    module = "skl2onnx.common.data_types" if tool == "skl2onnx" else (
        "onnxmltools.convert.common.data_types")  # fmt: skip
    types = require(module, extra="optimize")
    kinds = {"BYTES" if spec.datatype == "BYTES" else "number" for spec in specs}
    if kinds == {"number"}:
        return types.FloatTensorType([None, width])
    if kinds == {"BYTES"} and tool == "skl2onnx":
        return types.StringTensorType([None, width])
    raise UnsupportedModel(
        "the inputs mix strings and numbers (or are strings for a tree library), which only a "
        "scikit-learn ColumnTransformer can take in ONNX"
    )


def _plan(
    outputs: list[str],
    signature: Signature,
    method: str,
    *,
    probabilities: bool = True,
    classes: np.ndarray[Any, Any] | None = None,
) -> list[Output]:
    """Which converter outputs to expose: the parent's answer first, then probabilities."""
    first = signature.outputs[0]
    if len(outputs) == 1:  # regressors and transformers
        return [Output(outputs[0], first.name, first)]
    label, scores = outputs[:2]
    if method == "predict_proba":
        # One column [N] is a binary booster's probability of the second class.
        return [Output(scores, first.name, first, column=1 if len(first.shape) == 1 else None)]
    answer = Output(label, first.name, first, classes=classes)
    return [answer, Output(scores, PROBABILITIES)] if probabilities else [answer]
