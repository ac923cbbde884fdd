"""Conforming inputs to a signature: reordered by name, cast only where no value changes, and
every other mismatch named; the same step serves `LoadedModel.predict` and the server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InvalidInput
from modelyard.flavors import Signature, TensorSpec, infer_signature
from modelyard.flavors._signatures import conform_array

FRAME = pd.DataFrame({"a": [1.0, 2.0], "b": np.array([1, 2], np.int64), "c": ["x", "y"]})


def spec(datatype: str, shape: list[int] | None = None) -> TensorSpec:
    return TensorSpec(name="x", datatype=datatype, shape=shape or [-1])


def test_named_inputs_are_reordered_by_name() -> None:
    signature = infer_signature(FRAME)
    reordered = {"c": np.array(["z"]), "a": np.array([3.0]), "b": np.array([4])}
    assert list(signature.conform(reordered)) == ["a", "b", "c"]
    assert list(signature.conform(FRAME[["c", "b", "a"]])) == ["a", "b", "c"]


def test_missing_and_unknown_inputs_are_named_together() -> None:
    signature = infer_signature(FRAME)
    with pytest.raises(InvalidInput, match=r"^missing input 'c'; fraud:1 takes a, b, c$"):
        signature.conform(FRAME[["a", "b"]], model="fraud:1")
    with pytest.raises(InvalidInput, match=r"^unknown input 'd'; the model takes a, b, c$"):
        signature.conform(FRAME.assign(d=1.0))
    with pytest.raises(InvalidInput, match="unknown inputs 'e', 'd' and missing inputs 'b', 'c'"):
        signature.conform({"a": [1.0], "e": [1.0], "d": [1.0]})


@pytest.mark.parametrize(
    ("datatype", "array", "expected"),
    [
        ("FP64", np.array([0.1], np.float32), np.float64),  # widening
        ("INT64", np.array([7], np.int32), np.int64),
        ("FP32", np.array([3], np.int8), np.float32),
        ("FP64", np.array([True]), np.float64),
        ("FP32", np.array([2**24, -(2**24)], np.int64), np.float32),  # every value exact
        ("FP32", np.array([2**40], np.int64), np.float32),  # large, but a power of two
        ("FP32", np.array([0.5, np.nan, -np.inf, 2.0**100]), np.float32),  # every value exact
        ("FP32", np.array([0.1], np.float32).astype(np.float64), np.float32),  # went through FP64
        ("INT8", np.array([-128, 127], np.int64), np.int8),  # every value fits
        ("UINT8", np.array([0, 255], np.int64), np.uint8),
    ],
)
def test_lossless_casts_are_made(datatype: str, array: np.ndarray, expected: type) -> None:
    cast = conform_array(spec(datatype), array)
    assert cast.dtype == expected
    np.testing.assert_array_equal(cast.astype(array.dtype), array)


@pytest.mark.parametrize(
    ("datatype", "array", "message"),
    [
        ("FP32", np.array([0.1]), "must be FP32, got FP64 (some values are not exact in FP32;"),
        ("FP32", np.array([1e39]), "got FP64 (some values are not exact in FP32"),  # past its range
        ("FP16", np.array([0.1], np.float32), "must be FP16, got FP32 (some values are not exact"),
        ("INT64", np.array([1.0]), "must be INT64, got FP64 (floats are not made integers)"),
        ("FP32", np.array([2**24 + 1], np.int64), "got INT64 (some values are not exact in FP32)"),
        ("FP16", np.array([70000], np.int32), "got INT32 (some values are not exact in FP16)"),
        ("INT8", np.array([1, 300]), "got INT64 (values from 1 to 300 do not fit in INT8)"),
        ("UINT32", np.array([-1, 2]), "got INT64 (values from -1 to 2 do not fit in UINT32)"),
        ("BOOL", np.array([1]), "must be BOOL, got INT64 (only booleans are taken as BOOL)"),
        ("FP64", np.array(["1.5"]), "must be FP64, got BYTES"),
        ("FP64", np.array([1.0, None], object), "must be FP64, got BYTES"),
        ("FP32", np.zeros(2, complex), "must be FP32, got complex128"),
        ("BYTES", np.array([1.0]), "must be strings or bytes (BYTES), got FP64"),
    ],
)
def test_lossy_casts_are_refused_naming_input_and_types(
    datatype: str, array: np.ndarray, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        conform_array(spec(datatype), array)
    assert str(caught.value).startswith("input 'x' ") and message in str(caught.value)


def test_arrays_that_fit_are_passed_on_as_they_are() -> None:
    array = np.zeros((2, 3), np.float32)
    assert conform_array(spec("FP32", [-1, 3]), array) is array
    texts = np.array(["a", "b"])
    assert conform_array(spec("BYTES"), texts) is texts
    empty = np.zeros((0, 3), np.int64)  # no value to lose
    assert conform_array(spec("INT8", [-1, 3]), empty).dtype == np.int8


def test_a_table_column_may_come_as_n_by_1() -> None:
    signature = infer_signature(FRAME)
    arrays = signature.conform({"a": [[1.0], [2.0]], "b": [[1], [2]], "c": [["x"], ["y"]]})
    assert [array.shape for array in arrays.values()] == [(2,), (2,), (2,)]
    with pytest.raises(InvalidInput, match=r"input 'x' must have shape \[-1, 2\]"):
        conform_array(spec("FP64", [-1, 2]), np.zeros((2, 1)), column=True)


def test_inputs_must_agree_on_the_number_of_rows() -> None:
    signature = infer_signature({"ids": np.zeros((2, 3), np.int64), "mask": np.ones((2, 3))})
    with pytest.raises(
        InvalidInput, match=r"different numbers of rows: \[2, 3\] \('ids' has 2, 'mask' has 3\)"
    ):
        signature.conform({"ids": np.zeros((2, 3), np.int64), "mask": np.ones((3, 3))})


def test_unnamed_values_and_tuples() -> None:
    one = infer_signature(np.zeros((2, 3), np.float32))
    assert one.conform([[1, 2, 3]])["input-0"].dtype == np.float32  # a list of integers
    assert one.conform(pd.DataFrame(np.ones((2, 3), np.float32)))["input-0"].shape == (2, 3)
    pair = infer_signature((np.zeros((2, 3)), np.zeros(2, np.int64)))
    arrays = pair.conform((np.ones((1, 3), np.float32), np.array([4], np.int32)))
    assert [a.dtype for a in arrays.values()] == [np.float64, np.int64]
    with pytest.raises(InvalidInput, match=r"takes 2 inputs \(input-0, input-1\), got a tuple"):
        pair.conform((np.ones((1, 3)),))
    with pytest.raises(InvalidInput, match="takes 3 named inputs .*pass a DataFrame or a dict"):
        infer_signature(FRAME).conform(np.ones((2, 3)))


def test_prepare_passes_on_what_fits_and_rebuilds_the_rest() -> None:
    signature = infer_signature(FRAME)
    assert signature.prepare(FRAME) is FRAME  # nothing to do: the caller's own object
    frame = FRAME.assign(c=pd.Categorical(["x", "y"]))
    prepared = signature.prepare(frame[["c", "b", "a"]].astype({"a": np.float32}))
    assert list(prepared.columns) == ["a", "b", "c"]
    assert prepared["a"].dtype == np.float64 and prepared["c"].dtype == "category"
    built = signature.prepare({"c": ["z"], "a": [1.0], "b": [2]})
    assert isinstance(built, pd.DataFrame) and list(built.columns) == ["a", "b", "c"]
    numbered = pd.DataFrame({0: [1.0], 1: [2.0]})  # labels that are not strings
    assert list(infer_signature(numbered).prepare(numbered[[1, 0]]).columns) == [0, 1]

    array = np.zeros((2, 3), np.float32)
    one = infer_signature(array)
    assert one.prepare(array) is array
    assert one.prepare({"input-0": array}) is array  # a dict for a model of one array
    assert one.prepare(array.astype(np.int64)).dtype == np.float32

    pair = infer_signature((array, array))
    given = (array, array)
    assert pair.prepare(given) is given
    assert [a.dtype for a in pair.prepare((array, array.astype(np.int8)))] == [np.float32] * 2
    keyed = infer_signature({"ids": np.zeros((2, 3), np.int64)})
    mapping = {"ids": np.ones((1, 3), np.int64)}
    assert keyed.prepare(mapping) is mapping
    assert keyed.prepare({"ids": np.ones((1, 3), np.int32)})["ids"].dtype == np.int64


def test_check_keeps_taking_one_array_whatever_its_name() -> None:
    signature = infer_signature(np.zeros((3, 4), np.float32))
    signature.check({"whatever": np.ones((1, 4), np.float32)})
    with pytest.raises(InvalidInput, match="unknown input 'x' and missing input 'input-0'"):
        signature.conform({"x": np.ones((1, 4), np.float32)})


def test_model_input_puts_arrays_in_the_saved_form() -> None:
    columns = Signature(inputs=[TensorSpec(name="a", datatype="FP64", shape=[-1])],
                        content_type="pd")  # fmt: skip
    frame = columns.model_input({"a": np.ones((2, 1))})
    assert isinstance(frame, pd.DataFrame) and frame.shape == (2, 1)
    keyed = Signature(inputs=[TensorSpec(name="a", datatype="FP64", shape=[-1])],
                      content_type="dict")  # fmt: skip
    assert list(keyed.model_input({"a": np.ones(2)})) == ["a"]
