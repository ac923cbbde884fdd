"""A child's answer in its parent's shape: the `answer` setting is worked out from both answers,
checked when saved and when loaded (it comes from a model's files), and applied by the ONNX and
torch flavors' `predict`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from modelyard.errors import UnsupportedModel
from modelyard.flavors import TensorSpec, answer_for, load_model, save_model
from modelyard.flavors._answers import check_answer, form_of, outputs_of, shaped

LABELS = TensorSpec(name="output-0", datatype="INT64", shape=[-1])
ROWS = np.arange(6, dtype=np.float32).reshape(2, 3)


def two_outputs() -> Any:
    """A graph answering `label` [N, 1] as int32 (the row's sum) and `scores` [N, 3]."""
    nodes = [
        helper.make_node("ReduceSum", ["x", "axes"], ["total"], keepdims=1),
        helper.make_node("Cast", ["total"], ["label"], to=TensorProto.INT32),
        helper.make_node("Identity", ["x"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes, "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("label", TensorProto.INT32, ["N", 1]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor("axes", TensorProto.INT64, [1], [1])],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_forms_and_names_of_answers() -> None:
    array = np.zeros(2)
    assert form_of(array) == form_of([1, 2]) == form_of([]) == "array"
    assert form_of((array, array)) == form_of([array, array]) == "tuple"
    assert form_of({"a": array}) == form_of(pd.DataFrame({"a": array})) == "dict"
    assert list(outputs_of([array, array])) == ["output-0", "output-1"]
    assert list(outputs_of({"label": array})) == ["label"]
    assert list(outputs_of(array)) == ["output-0"]


def test_an_answer_already_the_parents_needs_no_setting() -> None:
    labels = np.array([1, 2], np.int64)
    assert answer_for(labels, labels.copy(), [LABELS]) is None


def test_extra_outputs_other_names_types_and_ranks_are_mapped() -> None:
    parent = np.array([1, 2], np.int64)
    child = {"label": np.array([[1], [2]], np.int32), "probabilities": np.zeros((2, 3))}
    answer = answer_for(parent, child, [LABELS])
    assert answer == {"form": "array", "outputs": [{"source": "label", **LABELS.model_dump()}]}
    result = shaped(child, answer)
    assert result.dtype == np.int64 and result.tolist() == [1, 2]
    # By name where the child has the parent's name, in any position.
    specs = [TensorSpec(name="b", datatype="FP32", shape=[-1, 2]),
             TensorSpec(name="a", datatype="FP32", shape=[-1])]  # fmt: skip
    values = {"a": np.zeros(2, np.float32), "b": np.ones((2, 2), np.float32)}
    answer = answer_for((values["b"], values["a"]), values, specs)
    assert answer is not None and answer["form"] == "tuple"
    assert [o["source"] for o in answer["outputs"]] == ["b", "a"]
    first, second = shaped(values, answer)
    assert first.shape == (2, 2) and second.shape == (2,)
    answer["form"] = "dict"
    assert list(shaped(values, answer)) == ["b", "a"]


def test_strings_stay_objects_and_a_child_with_fewer_outputs_is_refused() -> None:
    spec = TensorSpec(name="output-0", datatype="BYTES", shape=[-1])
    answer = {"form": "array", "outputs": [{"source": "label", **spec.model_dump()}]}
    words = np.array(["cat", "dog"], dtype=object)
    assert shaped({"label": words}, answer) is not None
    assert shaped({"label": words}, answer).dtype == object
    with pytest.raises(UnsupportedModel, match=r"answers 1 outputs \(output-0\) where its parent"):
        answer_for((words, words), words, [spec, spec])


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "form must be one of array, tuple, dict"),
        ({"form": "list", "outputs": []}, "form must be one of"),
        ({"form": "array", "outputs": "output-0"}, "outputs must be a list"),
        ({"form": "array", "outputs": [{"source": "x", "name": "y"}]}, "is no output"),
        (
            {
                "form": "array",
                "outputs": [{"source": "x", "name": "y", "datatype": "FP99", "shape": [-1]}],
            },
            "unknown datatype",
        ),  # fmt: skip
        (
            {"form": "array", "outputs": [{"source": "nope", **LABELS.model_dump()}]},
            "takes 'nope', which the model does not give",
        ),  # fmt: skip
        (
            {"form": "array", "outputs": [{"source": "x", **LABELS.model_dump()}] * 2},
            "an array answer has one output",
        ),  # fmt: skip
    ],
)
def test_a_bad_answer_setting_is_refused(answer: Any, problem: str) -> None:
    with pytest.raises(UnsupportedModel, match=f"answer setting is invalid: .*{problem}"):
        check_answer(answer, ["x"])


def test_the_onnx_flavor_answers_as_recorded(tmp_path: Path) -> None:
    spec = TensorSpec(name="output-0", datatype="INT64", shape=[-1])
    answer = {"form": "array", "outputs": [{"source": "label", **spec.model_dump()}]}
    info = save_model(two_outputs(), tmp_path / "child", input_example=ROWS, answer=answer)
    assert info.signature is not None and info.signature.outputs == [spec]
    loaded = load_model(tmp_path / "child")
    result = loaded.predict(ROWS)
    assert result.dtype == np.int64 and result.tolist() == [3, 12]
    # Without the setting, the graph's own outputs.
    save_model(two_outputs(), tmp_path / "plain", input_example=ROWS)
    assert list(load_model(tmp_path / "plain").predict(ROWS)) == ["label", "scores"]
    bad = {"form": "array", "outputs": [{"source": "probabilities", **spec.model_dump()}]}
    with pytest.raises(UnsupportedModel, match="'probabilities', which the model does not give"):
        save_model(two_outputs(), tmp_path / "bad", answer=bad)


def test_a_tampered_answer_setting_is_refused_at_load(tmp_path: Path) -> None:
    spec = TensorSpec(name="total", datatype="INT64", shape=[-1])
    answer = {"form": "array", "outputs": [{"source": "label", **spec.model_dump()}]}
    save_model(two_outputs(), tmp_path / "child", input_example=ROWS, answer=answer)
    file = tmp_path / "child" / "modelyard.json"
    info = json.loads(file.read_text())
    info["settings"]["answer"]["outputs"][0]["source"] = "secret"
    file.write_text(json.dumps(info))
    with pytest.raises(UnsupportedModel, match="'secret', which the model does not give"):
        load_model(tmp_path / "child")
    assert onnx.load(str(tmp_path / "child" / "model.onnx")).graph.output[1].name == "scores"


def test_the_torch_flavor_answers_as_recorded(tmp_path: Path) -> None:
    import torch

    module = torch.nn.Linear(3, 2).half().eval()
    spec = TensorSpec(name="output-0", datatype="FP32", shape=[-1, 2])
    answer = {"form": "array", "outputs": [{"source": "output-0", **spec.model_dump()}]}
    info = save_model(
        module,
        tmp_path / "half",
        input_example=ROWS,
        export=False,
        init={"in_features": 3, "out_features": 2},
        answer=answer,
    )
    assert info.signature is not None and info.signature.outputs == [spec]
    trust = {"trust": True}
    assert load_model(tmp_path / "half", **trust).predict(ROWS).dtype == np.float32
    file = tmp_path / "half" / "modelyard.json"
    info_json = json.loads(file.read_text())
    info_json["settings"]["answer"]["form"] = "set"
    file.write_text(json.dumps(info_json))
    with pytest.raises(UnsupportedModel, match="answer setting is invalid: form must be"):
        load_model(tmp_path / "half", **trust)
