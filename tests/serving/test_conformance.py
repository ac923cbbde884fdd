"""A real `modelyard serve` conforms OIP inputs to the signature as `LoadedModel.predict` does:
inputs in another order are reordered by name, lossless casts are made, and missing, unknown
and mistyped inputs get a 400 that names them, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard import Settings, Yard
from tests.servers import serving_process

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame(
    {"amount": RNG.normal(size=40), "age": RNG.integers(18, 90, 40), "score": RNG.normal(size=40)}
)
LABELS = (FRAME["amount"] + FRAME["score"] > 0).astype(int).to_numpy()
FEATURES = FRAME.to_numpy(np.float32)
ROWS = FRAME[:3]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any, Any]]:
    home = tmp_path_factory.mktemp("conformance") / "home"
    classifier = LogisticRegression().fit(FRAME, LABELS)
    regression = LinearRegression().fit(FEATURES, LABELS)
    with Yard(Settings(home=home)) as yard:
        yard.log_model(classifier, name="frame", input_example=FRAME[:5])
        yard.log_model(regression, name="array", input_example=FEATURES[:5])
    with serving_process(home, "frame:1", "array:1") as url:
        yield url, classifier, regression


def column(name: str, datatype: str, values: Any, shape: list[int] | None = None) -> dict:
    data = np.asarray(values).ravel().tolist()
    return {"name": name, "datatype": datatype, "shape": shape or [len(data)], "data": data}


def infer(url: str, model: str, *inputs: dict) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{model}/infer", json={"inputs": list(inputs)}, timeout=30)


def columns(**datatypes: str) -> list[dict]:
    """The first rows of FRAME's columns, each sent as the datatype given."""
    return [column(name, datatype, ROWS[name]) for name, datatype in datatypes.items()]


def test_inputs_in_another_order_are_reordered_by_name(served: tuple[str, Any, Any]) -> None:
    url, classifier, _ = served
    expected = classifier.predict(ROWS).tolist()
    for order in (["amount", "age", "score"], ["score", "amount", "age"]):
        types = {"amount": "FP64", "age": "INT64", "score": "FP64"}
        response = infer(url, "frame", *columns(**{name: types[name] for name in order}))
        assert response.status_code == 200, response.text
        assert response.json()["outputs"][0]["data"] == expected


def test_lossless_casts_are_made(served: tuple[str, Any, Any]) -> None:
    url, classifier, regression = served
    # FP32 for FP64, INT32 for INT64, and columns sent as [N, 1] (as pandas codecs send them)
    narrow = [column("score", "FP32", ROWS["score"].astype(np.float32), [3, 1]),
              column("age", "INT32", ROWS["age"], [3, 1]),
              column("amount", "FP32", ROWS["amount"].astype(np.float32), [3, 1])]  # fmt: skip
    response = infer(url, "frame", *narrow)
    assert response.status_code == 200, response.text
    widened = ROWS.astype(np.float32).astype({"amount": float, "score": float, "age": int})
    assert response.json()["outputs"][0]["data"] == classifier.predict(widened).tolist()
    integers = np.array([[1, 2, 3], [4, 5, 6]])  # exact in FP32
    response = infer(url, "array", column("input-0", "INT64", integers, [2, 3]))
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        response.json()["outputs"][0]["data"], regression.predict(integers.astype("f4")), rtol=1e-6
    )


@pytest.mark.parametrize(
    ("model", "inputs", "message"),
    [
        ("frame", columns(amount="FP64", score="FP64"),
         "missing input 'age'; frame:1 takes amount, age, score"),
        ("frame", [*columns(amount="FP64", age="INT64", score="FP64"),
                   column("x", "FP64", [0.0] * 3)],
         "unknown input 'x'; frame:1 takes amount, age, score"),
        ("frame", columns(amount="FP64", age="FP64", score="FP64"),
         "input 'age' must be INT64, got FP64 (floats are not made integers)"),
        ("frame", columns(amount="BYTES", age="INT64", score="FP64"),
         "input 'amount' must be FP64, got BYTES"),
        ("frame", [*columns(amount="FP64", age="INT64"), column("score", "FP64", [1.0, 2.0])],
         "the inputs have different numbers of rows: [2, 3]"),
        ("array", [column("input-0", "FP64", FRAME.to_numpy()[:2], [2, 3])],
         "input 'input-0' must be FP32, got FP64 (some values are not exact in FP32"),
        ("array", [column("input-0", "INT64", [[2**30 + 1] * 3], [1, 3])],
         "input 'input-0' must be FP32, got INT64 (some values are not exact in FP32)"),
        ("array", [column("features", "FP32", FEATURES[:2], [2, 3])],
         "unknown input 'features' and missing input 'input-0'; array:1 takes input-0"),
    ],
)  # fmt: skip
def test_what_does_not_fit_is_a_400_naming_it(
    served: tuple[str, Any, Any], model: str, inputs: list[dict], message: str
) -> None:
    response = infer(served[0], model, *inputs)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_input" and message in body["error"], body
