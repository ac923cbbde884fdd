"""ONNX: `onnx.ModelProto` graphs, checked and saved as `model.onnx`, run with ONNX Runtime.

Inputs are fed by name: one array goes to the first (and only) input, a dict or a DataFrame's
columns to the inputs they name, a tuple to the inputs in order. Each is cast to the element type
the graph declares when no value changes kind (float64 to float32, int32 to int64, integers to
floats, text to strings); anything else is refused with the input's name.

A model made by an optimization step from another version carries an `answer` setting (see
`_answers`): it answers with the outputs of its parent's signature, in the parent's form, and the
graph's other outputs (a converted classifier's `probabilities`) are not computed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, InvalidInput, UnsupportedModel
from modelyard.flavors._answers import check_answer, shaped
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._protocol import Flavor
from modelyard.flavors._signatures import _is_dataframe, datatype_of, datatype_or_kind
from modelyard.security import TrustPolicy

MODEL_FILE = "model.onnx"
CPU = "CPUExecutionProvider"
# Protocol buffers cannot hold more than 2 GB; larger models keep their weights in external files.
_MAX_BYTES = 2**31 - 1
# ONNX Runtime names element types `tensor(float)`, `tensor(int64)`, …
_ELEMENT_TYPES = {
    "float": np.float32, "double": np.float64, "float16": np.float16, "bool": np.bool_,
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "string": np.object_,
}  # fmt: skip


@flavor
class OnnxFlavor(Flavor):
    """ONNX models (`onnx.ModelProto`), loaded as an `onnxruntime.InferenceSession`."""

    name = "onnx"
    extra = "onnx"
    packages = ("onnx", "onnxruntime")

    def matches(self, model: object) -> bool:
        # The class is onnx.onnx_ml_pb2.ModelProto or onnx.onnx_pb.ModelProto, by build.
        return any(
            cls.__qualname__ == "ModelProto" and cls.__module__.split(".")[0] == "onnx"
            for cls in type(model).__mro__
        )

    def save(
        self,
        model: Any,
        path: Path,
        *,
        example: Any = None,
        providers: Sequence[str] = (CPU,),
        answer: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        _check_providers(providers)
        _check_model(model)
        settings: dict[str, Any] = {"format": "onnx", "file": MODEL_FILE,
                                    "providers": list(providers)}  # fmt: skip
        if answer is not None:
            settings["answer"] = check_answer(answer, [value.name for value in model.graph.output])
        onnx = require("onnx", extra="onnx")
        onnx.save_model(model, path / MODEL_FILE)
        return settings

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        loaded = session(str(inside(path, settings["file"])), settings.get("providers", [CPU]))
        if "answer" in settings:  # from the files: checked before any request relies on it
            check_answer(settings["answer"], [output.name for output in loaded.get_outputs()])
        return loaded

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        if self.matches(model):  # the ModelProto itself, while save_model infers the signature
            model = session(model.SerializeToString(), settings.get("providers", [CPU]))
        arrays = feeds(model.get_inputs(), inputs)
        answer = settings.get("answer")
        if answer is None:
            names = [output.name for output in model.get_outputs()]
        else:  # only what the parent answered: the other outputs are not computed
            names = list(dict.fromkeys(output["source"] for output in answer["outputs"]))
        ort = require("onnxruntime", extra="onnx")
        try:
            results = model.run(names, arrays)
        except ort.capi.onnxruntime_pybind11_state.InvalidArgument as error:
            raise InvalidInput(f"the ONNX model refused its inputs: {error}") from None
        if answer is not None:
            return shaped(dict(zip(names, results, strict=True)), answer)
        return results[0] if len(results) == 1 else dict(zip(names, results, strict=True))

    def describe(self, model: Any) -> dict[str, Any]:
        graph = model.graph
        initialized = {tensor.name for tensor in graph.initializer}
        return {
            "opset": {entry.domain or "ai.onnx": entry.version for entry in model.opset_import},
            "inputs": [_value(value) for value in graph.input if value.name not in initialized],
            "outputs": [_value(value) for value in graph.output],
            "nodes": len(graph.node),
            "initializers": len(graph.initializer),
        }


def _check_providers(providers: Sequence[str]) -> None:
    ort = require("onnxruntime", extra="onnx")
    known = set(ort.get_all_providers())
    unknown = [name for name in providers if name not in known]
    if isinstance(providers, str) or not providers or unknown:
        raise ConfigurationError(
            f"providers must be a list of ONNX Runtime execution providers, got {providers!r}; "
            f"known providers: {', '.join(sorted(known))}"
        )


def _check_model(model: Any) -> None:
    """Refuse what cannot be saved as one file, and what the ONNX checker finds invalid."""
    onnx = require("onnx", extra="onnx")
    # data_location is 0 (DEFAULT) for a tensor inside the model, 1 (EXTERNAL) for one outside.
    external = [tensor.name for tensor in model.graph.initializer if tensor.data_location]
    if external:
        raise UnsupportedModel(
            f"the ONNX model keeps tensors in external data files ({', '.join(external[:3])}); "
            "only models whose weights are inside the model file are supported"
        )
    if model.ByteSize() > _MAX_BYTES:
        raise UnsupportedModel(
            "the ONNX model is over 2 GB, which needs external data files; those are not supported"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise UnsupportedModel(f"the ONNX checker refuses this model: {error}") from None


def session(model: str | bytes, providers: Sequence[str]) -> Any:
    """An inference session on the providers this machine has, in the order asked, then CPU."""
    ort = require("onnxruntime", extra="onnx")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ONNX Runtime's warnings would go to stderr
    available = set(ort.get_available_providers())
    chosen = [name for name in providers if name in available and name != CPU] + [CPU]
    state = ort.capi.onnxruntime_pybind11_state
    # These have no common base but Exception; they are what a graph ONNX Runtime cannot run gives.
    refusals = (state.Fail, state.InvalidGraph, state.InvalidProtobuf, state.NotImplemented,
                state.NoSuchFile)  # fmt: skip
    try:
        return ort.InferenceSession(model, options, providers=chosen)
    except refusals as error:
        raise UnsupportedModel(f"ONNX Runtime cannot load this model: {error}") from None


def feeds(specs: Sequence[Any], inputs: Any) -> dict[str, np.ndarray[Any, Any]]:
    """The arrays to run the session on, by input name, each cast to its declared type."""
    given = _by_name(specs, inputs)
    expected = [spec.name for spec in specs]
    problems = [
        f"{problem} {', '.join(map(repr, names))}"
        for problem, names in [
            ("missing", [name for name in expected if name not in given]),
            ("unknown", [name for name in given if name not in expected]),
        ]
        if names
    ]
    if problems:
        raise InvalidInput(
            f"the ONNX model takes inputs {', '.join(map(repr, expected))}: {'; '.join(problems)}"
        )
    return {spec.name: _cast(spec, np.asarray(given[spec.name])) for spec in specs}


def _by_name(specs: Sequence[Any], inputs: Any) -> Mapping[str, Any]:
    if isinstance(inputs, Mapping):
        return inputs
    if _is_dataframe(inputs):
        if len(specs) == 1:
            return {specs[0].name: inputs.to_numpy()}
        return {str(column): inputs[column].to_numpy() for column in inputs.columns}
    if isinstance(inputs, tuple):
        if len(inputs) != len(specs):
            raise InvalidInput(f"the ONNX model takes {len(specs)} inputs, got {len(inputs)}")
        return {spec.name: value for spec, value in zip(specs, inputs, strict=True)}
    if len(specs) != 1:
        raise InvalidInput(
            f"the ONNX model takes {len(specs)} inputs ({', '.join(s.name for s in specs)}): "
            "pass a dict of arrays by name, a DataFrame with those columns, or a tuple"
        )
    return {specs[0].name: inputs}


def _cast(spec: Any, array: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """`array` as the element type and rank the input declares, where no value changes kind."""
    if len(spec.shape or ()) == array.ndim + 1:  # no shape at all is None
        array = array[..., np.newaxis]  # a DataFrame column for an input of shape [N, 1]
    target = _ELEMENT_TYPES.get(spec.type.removeprefix("tensor(").removesuffix(")"))
    if target is None or array.dtype == target:
        return array
    wanted = np.dtype(target)
    if wanted.kind == "O" and array.dtype.kind in "OSU":
        return array.astype(object)
    if _safe(array, wanted):
        return array.astype(wanted)
    raise InvalidInput(
        f"input {spec.name!r} must be {_datatype(wanted)}, got {datatype_or_kind(array)}"
    )


def _safe(array: np.ndarray[Any, Any], wanted: np.dtype[Any]) -> bool:
    kind = array.dtype.kind
    if wanted.kind == "f":
        return kind in "biuf"  # narrower floats and integers as floats, as models expect
    if wanted.kind in "iu" and kind in "biu":
        info = np.iinfo(wanted)
        return array.size == 0 or bool(array.min() >= info.min and array.max() <= info.max)
    return False


def _datatype(dtype: np.dtype[Any]) -> str:
    return "BYTES" if dtype.kind == "O" else datatype_of(dtype)


def _value(value: Any) -> dict[str, Any]:
    """A graph input or output as name, OIP datatype and shape (-1 where any size goes)."""
    if not value.type.HasField("tensor_type"):  # sequences and maps, as ZipMap outputs
        return {"name": value.name, "type": value.type.WhichOneof("value")}
    onnx = require("onnx", extra="onnx")
    tensor = value.type.tensor_type
    try:
        datatype = _datatype(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)))
    except (KeyError, InvalidInput):
        datatype = onnx.TensorProto.DataType.Name(tensor.elem_type)
    shape = [dim.dim_value if dim.HasField("dim_value") else -1 for dim in tensor.shape.dim]
    return {"name": value.name, "datatype": datatype, "shape": shape}
