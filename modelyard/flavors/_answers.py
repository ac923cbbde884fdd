"""A child version's answer in its parent's shape.

An optimization step makes a new model that answers the parent's requests, but its runtime may
name, type or group the answer otherwise: an ONNX graph of a scikit-learn classifier returns
the labels and a `probabilities` tensor where the parent returned labels alone; a float16 torch
module returns float16. Clients, shadows comparing answers, and the serving signature check
all need the parent's answer, so the step records, in the child's flavor settings, which of
the runtime's outputs make the parent's answer and in what form:

    "answer": {"form": "array", "outputs": [
        {"source": "output-0", "name": "output-0", "datatype": "INT64", "shape": [-1]}]}

`form` is how the parent returned it (one `array`, a `tuple`, a `dict`); each output takes the
runtime's `source`, cast to the parent's datatype and shaped to its rank. Runtime outputs not
listed are not answered (an ONNX graph keeps them, for whoever runs it directly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelyard.errors import InvalidInput, UnsupportedModel
from modelyard.flavors._signatures import (
    TensorSpec,
    _columns,
    _is_dataframe,
    datatype_of,
    numpy_dtype,
)

FORMS = ("array", "tuple", "dict")


def form_of(answer: Any) -> str:
    """How a model returned its answer: one `array`, a `tuple`, or a `dict` (a DataFrame's
    columns count as a dict)."""
    if isinstance(answer, Mapping) or _is_dataframe(answer):
        return "dict"
    return "tuple" if isinstance(answer, tuple | list) and not _is_array_list(answer) else "array"


def outputs_of(answer: Any) -> dict[str, np.ndarray[Any, Any]]:
    """A runtime's answer by output name: a dict's keys, `output-0`, `output-1`, … by position."""
    if isinstance(answer, list) and not _is_array_list(answer):
        answer = tuple(answer)
    return _columns(answer, "output")


def answer_for(parent: Any, child: Any, specs: list[TensorSpec]) -> dict[str, Any] | None:
    """The `answer` setting that makes a child whose runtime answered `child` answer as the
    parent did (`parent`, described by its signature's output `specs`); None when the child's
    answer already is the parent's. Each of the parent's outputs takes the child's output of
    the same name, else the child's output in the same position."""
    raw = outputs_of(child)
    names = list(raw)
    if len(names) < len(specs):
        raise UnsupportedModel(
            f"the new model answers {len(names)} outputs ({', '.join(names)}) where its parent "
            f"answered {len(specs)} ({', '.join(spec.name for spec in specs)})"
        )
    outputs = []
    for index, spec in enumerate(specs):
        source = spec.name if spec.name in raw else names[index]
        outputs.append({"source": source, **spec.model_dump()})
    answer = {"form": form_of(parent), "outputs": outputs}
    same = (
        form_of(child) == answer["form"]
        and names == [spec.name for spec in specs]
        and all(_fits(raw[spec.name], spec) for spec in specs)
    )
    return None if same else answer


def check_answer(answer: Any, available: list[str] | None = None) -> dict[str, Any]:
    """`answer` as read from a model's files (untrusted), or `UnsupportedModel` naming what is
    wrong; `available`: the runtime's output names, when known."""
    problem = _problem(answer, available)
    if problem:
        raise UnsupportedModel(f"the model's answer setting is invalid: {problem}")
    return dict(answer)


def shaped(results: Mapping[str, np.ndarray[Any, Any]], answer: Mapping[str, Any]) -> Any:
    """The runtime's `results` (by output name) as the parent answered: its outputs, each cast
    to its datatype and rank, in its form."""
    arrays = {
        output["name"]: _conform(np.asarray(results[output["source"]]), output)
        for output in answer["outputs"]
    }
    form = answer["form"]
    if form == "dict":
        return arrays
    if form == "tuple":
        return tuple(arrays.values())
    return next(iter(arrays.values()))


def _conform(array: np.ndarray[Any, Any], output: Mapping[str, Any]) -> np.ndarray[Any, Any]:
    shape = output["shape"]
    if array.ndim != len(shape) and array.ndim and -1 not in shape[1:]:
        # [N, 1] labels for [N], or the other way: the same values, the parent's rank
        wanted = [array.shape[0], *shape[1:]]
        if int(np.prod(wanted)) == array.size:
            array = array.reshape(wanted)
    dtype = numpy_dtype(output["datatype"])
    if array.dtype != dtype and not (dtype.kind == "O" and array.dtype.kind in "OSU"):
        array = array.astype(dtype)
    return array


def _fits(array: np.ndarray[Any, Any], spec: TensorSpec) -> bool:
    try:
        datatype = datatype_of(array.dtype)
    except InvalidInput:
        return False
    return datatype == spec.datatype and array.ndim == len(spec.shape)


def _is_array_list(value: Any) -> bool:
    """A list of numbers (one array), not a list of arrays (several outputs)."""
    return not value or np.isscalar(value[0])


def _problem(answer: Any, available: list[str] | None) -> str:
    if not isinstance(answer, Mapping) or answer.get("form") not in FORMS:
        return f"form must be one of {', '.join(FORMS)}"
    outputs = answer.get("outputs")
    if not isinstance(outputs, list) or not outputs:
        return "outputs must be a list of outputs"
    for output in outputs:
        try:
            spec = TensorSpec.model_validate(output)
            numpy_dtype(spec.datatype)
        except (ValueError, InvalidInput) as error:  # pydantic's ValidationError is a ValueError
            return f"{output!r} is no output: {str(error).splitlines()[0]}"
        source = output.get("source")
        if not isinstance(source, str) or (available is not None and source not in available):
            return f"output {spec.name!r} takes {source!r}, which the model does not give"
    if answer["form"] == "array" and len(outputs) != 1:
        return "an array answer has one output"
    return ""
