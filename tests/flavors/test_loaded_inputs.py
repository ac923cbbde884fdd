"""`LoadedModel.predict` and `predict_proba` in-process: inputs conformed by the signature as the
server conforms them (reordered, cast where lossless, every mismatch a named `InvalidInput`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.linear_model import LinearRegression, LogisticRegression

from modelyard.errors import InvalidInput, UnsupportedModel
from modelyard.flavors import LoadedModel, load_model, save_model
from tests.flavors.pyfunc_models import Picky

RNG = np.random.default_rng(0)
FRAME = pd.DataFrame(
    {"amount": RNG.normal(size=40), "age": RNG.integers(18, 90, 40), "score": RNG.normal(size=40)}
)
LABELS = (FRAME["amount"] + FRAME["score"] > 0).astype(int).to_numpy()


def saved(tmp_path: Path, model: object, example: object, **options: object) -> LoadedModel:
    folder = tmp_path / "model"
    save_model(model, folder, input_example=example, **options)
    return load_model(folder, trust=True)


def test_reordered_columns_and_dict_keys_answer_as_the_trained_order(tmp_path: Path) -> None:
    classifier = LogisticRegression().fit(FRAME, LABELS)
    model = saved(tmp_path, classifier, FRAME[:5])
    expected = classifier.predict(FRAME)
    np.testing.assert_array_equal(model.predict(FRAME[["score", "amount", "age"]]), expected)
    as_dict = {name: FRAME[name].to_numpy() for name in ["age", "score", "amount"]}
    np.testing.assert_array_equal(model.predict(as_dict), expected)


def test_missing_extra_and_mistyped_columns_are_named(tmp_path: Path) -> None:
    model = saved(tmp_path, LogisticRegression().fit(FRAME, LABELS), FRAME[:5])
    model.ref = "fraud:3"
    with pytest.raises(InvalidInput, match=r"^missing input 'age'; fraud:3 takes amount, age"):
        model.predict(FRAME[["amount", "score"]])
    with pytest.raises(InvalidInput, match=r"^unknown input 'extra'; fraud:3 takes"):
        model.predict(FRAME.assign(extra=1.0))
    with pytest.raises(InvalidInput, match=r"input 'age' must be INT64, got FP64 \(floats are"):
        model.predict(FRAME.astype({"age": float}))
    with pytest.raises(InvalidInput, match="input 'amount' must be FP64, got BYTES"):
        model.predict(FRAME.astype({"amount": str}))


def test_lossless_casts_are_made_and_lossy_ones_refused(tmp_path: Path) -> None:
    features = FRAME.to_numpy(np.float32)
    regression = LinearRegression().fit(features, LABELS)
    model = saved(tmp_path, regression, features[:5])
    as_ints = np.array([[1, 2, 3]], np.int64)  # exact in FP32
    np.testing.assert_allclose(model.predict(as_ints), regression.predict(as_ints.astype("f4")))
    np.testing.assert_allclose(  # float32 values that went through float64: exact, cast back
        model.predict(features.astype(np.float64)), regression.predict(features)
    )
    with pytest.raises(InvalidInput, match="input 'input-0' must be FP32, got FP64 .some values"):
        model.predict(FRAME.to_numpy())
    with pytest.raises(InvalidInput, match=r"must have shape \[-1, 3\], got \[2, 4\]"):
        model.predict(np.zeros((2, 4), np.float32))


def test_fp32_columns_are_widened_for_an_fp64_model(tmp_path: Path) -> None:
    classifier = LogisticRegression().fit(FRAME, LABELS)
    model = saved(tmp_path, classifier, FRAME[:5])
    narrow = FRAME.astype({"amount": np.float32, "score": np.float32, "age": np.int32})
    widened = narrow.astype({"amount": np.float64, "score": np.float64, "age": np.int64})
    np.testing.assert_array_equal(model.predict(narrow), classifier.predict(widened))


@pytest.mark.parametrize("kind", ["sklearn", "xgboost", "lightgbm"])
def test_predict_proba_of_classifiers(tmp_path: Path, kind: str) -> None:
    native: Any
    if kind == "sklearn":
        native = LogisticRegression().fit(FRAME, LABELS)
    elif kind == "xgboost":
        native = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(FRAME, LABELS)
    else:  # loaded back as a Booster, whose scores the flavor turns into probabilities
        native = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(FRAME, LABELS)
    model = saved(tmp_path, native, FRAME[:5])
    probabilities = model.predict_proba(FRAME[["score", "age", "amount"]])
    assert probabilities.shape == (40, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probabilities, native.predict_proba(FRAME), rtol=1e-5)
    with pytest.raises(InvalidInput, match="missing input 'age'"):
        model.predict_proba(FRAME[["amount", "score"]])


def test_predict_proba_where_there_are_no_probabilities(tmp_path: Path) -> None:
    regression = saved(tmp_path / "r", LinearRegression().fit(FRAME, LABELS), FRAME[:5])
    with pytest.raises(UnsupportedModel, match=r"LinearRegression \(sklearn\) gives no class"):
        regression.predict_proba(FRAME)
    booster = lightgbm.train({"objective": "regression", "verbose": -1},
                             lightgbm.Dataset(FRAME, LABELS), num_boost_round=2)  # fmt: skip
    with pytest.raises(UnsupportedModel, match="gives no class probabilities"):
        saved(tmp_path / "b", booster, FRAME[:5]).predict_proba(FRAME)
    picky = saved(tmp_path / "p", Picky(), np.zeros((2, 3)))
    picky.ref = "picky:1"
    with pytest.raises(UnsupportedModel, match=r"^picky:1 \(pyfunc\) gives no class"):
        picky.predict_proba(np.zeros((2, 3)))
