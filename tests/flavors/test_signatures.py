from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InvalidInput
from modelyard.flavors import Signature, TensorSpec, infer_signature
from modelyard.flavors._signatures import datatype_of, numpy_dtype


def test_array_signature_has_variable_batch() -> None:
    signature = infer_signature(np.zeros((3, 4), np.float32), np.zeros(3, np.int64))
    assert signature.inputs == [TensorSpec(name="input-0", datatype="FP32", shape=[-1, 4])]
    assert signature.outputs == [TensorSpec(name="output-0", datatype="INT64", shape=[-1])]
    assert signature.content_type == "np"


def test_dataframe_signature_has_one_input_per_column() -> None:
    frame = pd.DataFrame(
        {
            "amount": np.array([1.5, 2.0]),
            "count": np.array([1, 2], np.int32),
            "country": ["fr", "de"],
            "flag": [True, False],
            "nullable": pd.array([1, 2], dtype="Int64"),
            "category": pd.Categorical(["a", "b"]),
        }
    )
    signature = infer_signature(frame)
    assert [(s.name, s.datatype, s.shape) for s in signature.inputs] == [
        ("amount", "FP64", [-1]),
        ("count", "INT32", [-1]),
        ("country", "BYTES", [-1]),
        ("flag", "BOOL", [-1]),
        ("nullable", "INT64", [-1]),
        ("category", "BYTES", [-1]),
    ]
    assert signature.content_type == "pd"
    assert signature.outputs == []


def test_dict_and_tuple_signatures() -> None:
    signature = infer_signature(
        {"ids": np.zeros((2, 7), np.int64), "mask": np.ones((2, 7), bool)},
        (np.zeros((2, 3), np.float16), np.zeros(2, np.uint8)),
    )
    assert [s.name for s in signature.inputs] == ["ids", "mask"]
    assert signature.content_type == "dict"
    assert [(s.name, s.datatype) for s in signature.outputs] == [
        ("output-0", "FP16"),
        ("output-1", "UINT8"),
    ]


def test_scalar_and_list_outputs() -> None:
    signature = infer_signature([[1.0, 2.0]], 3.0)
    assert signature.inputs[0].shape == [-1, 2]
    assert signature.outputs[0].shape == [-1]


def test_check_accepts_matching_inputs() -> None:
    signature = infer_signature(np.zeros((3, 4), np.float32))
    signature.check(np.ones((10, 4), np.float32))
    signature.check(np.ones((1, 4), np.int64))  # integers widen to floats


def test_check_names_the_bad_input() -> None:
    signature = infer_signature(pd.DataFrame({"a": [1.0], "b": ["x"]}))
    with pytest.raises(InvalidInput, match="missing input 'b'; the model takes a, b"):
        signature.check(pd.DataFrame({"a": [1.0]}))
    with pytest.raises(InvalidInput, match="input 'b' must be strings or bytes"):
        signature.check({"a": np.array([1.0]), "b": np.array([1.0])})
    with pytest.raises(InvalidInput, match="input 'a' must be FP64, got BYTES"):
        signature.check({"a": np.array(["x"]), "b": np.array(["x"])})


def test_check_shapes() -> None:
    signature = infer_signature(np.zeros((3, 4), np.float32))
    with pytest.raises(InvalidInput, match=r"shape \[-1, 4\] \(2 dimensions\), got \[4\]"):
        signature.check(np.zeros(4, np.float32))
    with pytest.raises(InvalidInput, match=r"must have shape \[-1, 4\], got \[2, 5\]"):
        signature.check(np.zeros((2, 5), np.float32))
    with pytest.raises(InvalidInput, match="input 'input-0' must be FP32, got complex128"):
        signature.check(np.zeros((2, 4), complex))


def test_input_lookup_and_round_trip() -> None:
    signature = infer_signature({"x": np.zeros((1, 2))})
    assert signature.input("x").datatype == "FP64"
    with pytest.raises(InvalidInput, match="unknown input 'y'; the model takes x"):
        signature.input("y")
    assert Signature.model_validate(signature.to_json()) == signature


def test_datatypes_both_ways() -> None:
    for code in ["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                 "int64", "float16", "float32", "float64"]:  # fmt: skip
        assert numpy_dtype(datatype_of(np.dtype(code))) == np.dtype(code)
    assert datatype_of(np.dtype("U3")) == datatype_of(np.dtype(object)) == "BYTES"
    assert numpy_dtype("BYTES") == np.dtype(object)
    with pytest.raises(InvalidInput, match="dtype complex128 has no Open Inference"):
        datatype_of(np.dtype(complex))
    with pytest.raises(InvalidInput, match="unknown datatype 'FP8'"):
        numpy_dtype("FP8")


def test_torch_like_tensors_are_read_as_arrays() -> None:
    class Tensor:
        def detach(self) -> Tensor:
            return self

        def cpu(self) -> Tensor:
            return self

        def numpy(self) -> np.ndarray:  # type: ignore[type-arg]
            return np.zeros((2, 3), np.float32)

    assert infer_signature(Tensor()).inputs[0].shape == [-1, 3]
