"""Graph surgery for the converters: inputs adapted to the parent's signature (casts, column
concatenation) and outputs exposed under the parent's names, datatypes and shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.flavors import Signature, TensorSpec, numpy_dtype

_PREFIX = "modelyard/"  # the names of the values this module adds to a graph


@dataclass(frozen=True)
class Output:
    """A graph output: the converter's value `source`, exposed as `name`, with the datatype and
    shape of `spec` when given; `classes` picks labels by class index, `column` one column."""

    source: str
    name: str
    spec: TensorSpec | None = None
    classes: np.ndarray[Any, Any] | None = None
    column: int | None = None


_Step = tuple[str, list[str | None], dict[str, Any]]  # op, inputs (None: the value), attributes


def adapt_inputs(proto: Any, signature: Signature, converted: list[str], *, concat: bool) -> None:
    """Make the graph take the parent's inputs, cast and reshaped into the converter's inputs
    (all concatenated into the first one, when `concat`)."""
    onnx = require("onnx", extra="onnx")
    graph = proto.graph
    # The parent's names may be taken in the converter's graph (its own inputs, "variable"):
    # those values move aside.
    taken = {spec.name for spec in signature.inputs} & {
        *(value.name for value in graph.input), *(t.name for t in graph.initializer),
        *(output for node in graph.node for output in node.output),
    }  # fmt: skip
    for name in taken:
        _rename(graph, name, f"{_PREFIX}converted/{name}")
    converted = [f"{_PREFIX}converted/{name}" if name in taken else name for name in converted]
    declared = {value.name: value.type.tensor_type for value in graph.input}
    targets = converted[:1] * len(signature.inputs) if concat else converted
    nodes: list[Any] = []
    parts = []
    for spec, name in zip(signature.inputs, targets, strict=True):
        tensor = declared[name]
        steps = _input_steps(graph, spec, tensor.elem_type, 2 if concat else len(tensor.shape.dim))
        if len(targets) > 1 and concat:
            parts.append(_chain(nodes, spec.name, steps, f"{_PREFIX}inputs/{spec.name}"))
        elif steps:
            _chain(nodes, spec.name, steps, name)
        else:
            _rename(graph, name, spec.name)
    if parts:
        nodes.append(
            onnx.helper.make_node("Concat", parts, converted[:1], name=f"{_PREFIX}concat", axis=1)
        )
    initialized = {tensor.name for tensor in graph.initializer}
    kept = [value for value in graph.input if value.name in initialized]  # IR < 4 lists them
    del graph.input[:]
    graph.input.extend([*(_value_info(spec.name, spec) for spec in signature.inputs), *kept])
    everything = [*nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(everything)


def _input_steps(graph: Any, spec: TensorSpec, elem: int, rank: int) -> list[_Step]:
    """How the parent's input `spec` becomes a converter input of type `elem` and `rank`."""
    steps: list[_Step] = []
    if len(spec.shape) + 1 == rank:  # a DataFrame column, for a converter input [N, 1]
        steps.append(
            ("Reshape", [None, _constant(graph, "shape[-1,1]", np.array([-1, 1], np.int64))], {})
        )
    if _elem(spec) != elem:
        steps.append(("Cast", [None], {"to": elem}))
    return steps


def expose(proto: Any, outputs: list[Output]) -> None:
    """Replace the graph's outputs with `outputs`, cast, reshaped or picked as each asks."""
    onnx = require("onnx", extra="onnx")
    graph = proto.graph
    declared = {value.name: value.type.tensor_type for value in graph.output}
    values = []
    for output in outputs:
        tensor, spec, steps = declared[output.source], output.spec, list[_Step]()
        elem = tensor.elem_type
        if output.classes is not None:
            classes = _constant(graph, f"{output.name}/classes", output.classes)
            steps.append(("Gather", [classes, None], {}))
            elem = _elem_of_array(output.classes)
        if output.column is not None:
            column = _constant(graph, f"column{output.column}", np.array(output.column, np.int64))
            steps.append(("Gather", [None, column], {"axis": 1}))
        if spec is not None and len(spec.shape) == 1 and len(tensor.shape.dim) != 1:
            steps.append(
                ("Reshape", [None, _constant(graph, "shape[-1]", np.array([-1], np.int64))], {})
            )
        if spec is not None and spec.datatype != "BYTES" and _elem(spec) != elem:
            steps.append(("Cast", [None], {"to": _elem(spec)}))
        if steps:
            _chain(graph.node, output.source, steps, output.name)
        else:
            _rename(graph, output.source, output.name)
        if spec is None:
            values.append(onnx.helper.make_tensor_value_info(output.name, elem, None))
            values[-1].type.tensor_type.shape.CopyFrom(tensor.shape)
        else:
            values.append(_value_info(output.name, spec))
    del graph.output[:]
    graph.output.extend(values)


def _chain(nodes: Any, source: str, steps: list[_Step], result: str) -> str:
    """Append the nodes of `steps` from `source`, the last one writing `result`; returns the
    name of the final value."""
    onnx = require("onnx", extra="onnx")
    value = source
    for index, (op, inputs, attributes) in enumerate(steps):
        output = result if index == len(steps) - 1 else f"{result}/{index}"
        filled = [value if name is None else name for name in inputs]
        nodes.append(onnx.helper.make_node(op, filled, [output], name=output, **attributes))
        value = output
    return value


def _rename(graph: Any, old: str, new: str) -> None:
    """Rename a value everywhere in `graph`, its subgraphs included."""
    for value in [*graph.input, *graph.output, *graph.value_info, *graph.initializer]:
        if value.name == old:
            value.name = new
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                _rename(subgraph, old, new)


def _constant(graph: Any, name: str, array: np.ndarray[Any, Any]) -> str:
    onnx = require("onnx", extra="onnx")
    name = f"{_PREFIX}{name}"
    if name not in {tensor.name for tensor in graph.initializer}:
        graph.initializer.append(onnx.numpy_helper.from_array(array, name))
    return name


def _value_info(name: str, spec: TensorSpec) -> Any:
    onnx = require("onnx", extra="onnx")
    shape = ["N" if size == -1 else size for size in spec.shape]
    return onnx.helper.make_tensor_value_info(name, _elem(spec), shape)


def _elem(spec: TensorSpec) -> int:
    """The ONNX element type of an OIP datatype."""
    return _elem_of_array(np.empty(0, numpy_dtype(spec.datatype)))


def _elem_of_array(array: np.ndarray[Any, Any]) -> int:
    onnx = require("onnx", extra="onnx")
    dtype = np.dtype(object) if array.dtype.kind in "OSU" else array.dtype
    return int(onnx.helper.np_dtype_to_tensor_dtype(dtype))
