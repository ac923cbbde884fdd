"""Features: model inputs as one matrix of numbers, named from the signature, and back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InvalidInput, UnsupportedModel
from modelyard.explain import Features
from modelyard.flavors import Signature, TensorSpec, infer_signature


def spec(name: str, datatype: str, *shape: int) -> TensorSpec:
    return TensorSpec(name=name, datatype=datatype, shape=[-1, *shape])


def test_one_array_gets_numbered_features_of_its_dtype() -> None:
    features = Features.of(infer_signature(np.zeros((2, 3), np.float32)))
    assert features.names == ("x0", "x1", "x2")
    rows = features.rows_of(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert rows.dtype == np.float64 and rows.tolist() == [[0, 1, 2], [3, 4, 5]]
    back = features.model_input(rows + 0.25)
    assert back.dtype == np.float32 and back.shape == (2, 3)
    images = Features.of(Signature(inputs=[spec("pixels", "FP32", 2, 2)]))
    assert images.names == ("x0", "x1", "x2", "x3")
    assert images.model_input(np.zeros((5, 4))).shape == (5, 2, 2)


def test_a_dataframe_keeps_its_columns_and_their_types() -> None:
    frame = pd.DataFrame({"amount": [1.5, 2.5], "items": [1, 2], "member": [True, False]})
    features = Features.of(infer_signature(frame))
    assert features.names == ("amount", "items", "member")
    rows = features.rows_of(frame)
    assert rows.tolist() == [[1.5, 1, 1], [2.5, 2, 0]]
    back = features.model_input(rows + [0.0, 0.4, 0.3])  # perturbed, as LIME does
    assert list(back.columns) == ["amount", "items", "member"]
    assert back["items"].tolist() == [1, 2] and back["items"].dtype == np.int64
    assert back["member"].tolist() == [True, False]


def test_several_inputs_name_their_columns() -> None:
    signature = Signature(inputs=[spec("a", "FP64"), spec("b", "FP64", 2)], content_type="dict")
    features = Features.of(signature)
    assert features.names == ("a", "b[0]", "b[1]")
    rows = features.matrix({"a": np.array([1.0, 2.0]), "b": np.array([[3.0, 4.0], [5.0, 6.0]])})
    assert rows.tolist() == [[1, 3, 4], [2, 5, 6]]
    back = features.model_input(rows)
    assert back["a"].shape == (2,) and back["b"].tolist() == [[3, 4], [5, 6]]
    with pytest.raises(InvalidInput, match="unknown input 'c'; the model takes a, b"):
        features.matrix({"a": np.zeros(2), "b": np.zeros((2, 2)), "c": np.zeros(2)})
    with pytest.raises(InvalidInput, match=r"different numbers of rows: \[2, 3\]"):
        features.matrix({"a": np.zeros(2), "b": np.zeros((3, 2))})
    with pytest.raises(InvalidInput, match="missing input 'b'"):
        features.matrix({"a": np.zeros(2)})


def test_what_cannot_be_a_feature() -> None:
    with pytest.raises(UnsupportedModel, match="input 'country' holds strings"):
        Features.of(Signature(inputs=[spec("country", "BYTES")], content_type="pd"))
    with pytest.raises(UnsupportedModel, match=r"variable shape \[-1, -1\]"):
        Features.of(Signature(inputs=[spec("tokens", "INT64", -1)]))


def test_features_of_data_without_a_signature() -> None:
    assert Features.infer({"only": np.zeros((3, 2))}).names == ("x0", "x1")
    assert Features.infer({"a": np.zeros(3), "b": np.zeros(3)}).names == ("a", "b")
