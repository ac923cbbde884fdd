from __future__ import annotations

import operator
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.tree import DecisionTreeRegressor

from modelyard.diff import summary_changes
from modelyard.errors import ConfigurationError, UnsafeModel, UnsupportedModel, UntrustedModel
from modelyard.flavors import (
    EnvironmentMismatch,
    adopt_pickle,
    flavor_for,
    load_model,
    read_info,
    save_model,
)
from modelyard.security import TrustPolicy
from tests.flavors.conftest import predict_in_fresh_process
from tests.flavors.malicious import SystemCall


@pytest.fixture
def data() -> tuple[pd.DataFrame, np.ndarray]:  # type: ignore[type-arg]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"amount": rng.random(60), "age": rng.integers(18, 90, 60)})
    return frame, (frame["amount"] > 0.5).to_numpy().astype(int)


def test_forest_round_trip_in_a_fresh_process(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    frame, labels = data
    model = RandomForestClassifier(n_estimators=7, max_depth=4, random_state=0).fit(frame, labels)
    info = save_model(model, tmp_path / "m", input_example=frame[:5])
    assert info.flavor == "sklearn" and info.settings["format"] == "skops"
    assert info.settings["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert [(s.name, s.datatype) for s in info.signature.inputs] == [  # type: ignore[union-attr]
        ("amount", "FP64"),
        ("age", "INT64"),
    ]
    assert info.summary["trees"] == 7 and info.summary["depth"] <= 4
    assert info.environment["packages"]["scikit-learn"]
    assert not list((tmp_path / "m").glob("*.pkl"))
    predictions = predict_in_fresh_process(tmp_path / "m", frame, tmp_path)
    np.testing.assert_array_equal(predictions, model.predict(frame))


def test_loaded_model_exposes_the_estimator_and_example(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    frame, labels = data
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, labels)
    save_model(model, tmp_path / "m", input_example=frame[:3], method="predict_proba")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(frame), model.predict_proba(frame))
    assert type(loaded.native).__name__ == "Pipeline"
    pd.testing.assert_frame_equal(loaded.input_example(), frame[:3].reset_index(drop=True))
    assert loaded.signature is not None and loaded.signature.outputs[0].shape == [-1, 2]
    assert "sklearn" in repr(loaded)


def test_model_without_example_has_no_signature(tmp_path: Path) -> None:
    model = DecisionTreeRegressor(max_depth=2).fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
    info = save_model(model, tmp_path / "m")
    assert info.signature is None and info.example is None
    assert info.summary["trees"] == 1 and info.summary["depth"] == 2
    assert load_model(tmp_path / "m").input_example() is None


def test_tree_summary_diff_names_changed_hyperparameters() -> None:
    x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    a = flavor_for(RandomForestClassifier()).describe(
        RandomForestClassifier(n_estimators=3, max_depth=2, random_state=0).fit(x, y)
    )
    b = flavor_for(RandomForestClassifier()).describe(
        RandomForestClassifier(n_estimators=5, max_depth=2, random_state=0).fit(x, y)
    )
    changes = dict((key, (va, vb)) for key, va, vb in summary_changes(a, b))
    assert changes == {"hyperparameters.n_estimators": (3, 5), "trees": (3, 5)}


def test_histogram_boosting_summary() -> None:
    x, y = np.arange(200.0).reshape(100, 2), np.arange(100) % 2
    model = HistGradientBoostingClassifier(max_iter=4, max_depth=3, random_state=0).fit(x, y)
    summary = flavor_for(model).describe(model)
    assert summary["trees"] == model.n_iter_ and 1 <= summary["depth"] <= 3


def test_skops_types_are_trusted_by_the_operator_never_by_the_file(tmp_path: Path) -> None:
    x = np.ones((3, 2))
    save_model(FunctionTransformer(operator.neg).fit(x), tmp_path / "m", method="transform")
    # Saving records the types, for information; loading does not trust them.
    assert read_info(tmp_path / "m").settings["trusted_types"] == ["_operator.neg"]
    with pytest.raises(UntrustedModel, match="names _operator.neg.*`trusted_types` setting"):
        load_model(tmp_path / "m")
    with pytest.raises(UntrustedModel, match="_operator.neg"):
        load_model(tmp_path / "m", trust=True)  # trusting pickles is not trusting skops types
    loaded = load_model(tmp_path / "m", trust=TrustPolicy(types=("_operator.neg",)))
    np.testing.assert_array_equal(loaded.predict(x), -x)


def test_fitted_trees_load_with_the_fixed_safe_list(tmp_path: Path) -> None:
    x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    save_model(LogisticRegression().fit(x, y), tmp_path / "m")
    skops.io.dump(RandomForestClassifier(n_estimators=2).fit(x, y), tmp_path / "m/model.skops")
    assert load_model(tmp_path / "m").predict(x).shape == (20,)


def test_joblib_serialization_needs_trust(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    frame, labels = data
    model = LogisticRegression().fit(frame, labels)
    save_model(model, tmp_path / "m", serialization="joblib")
    with pytest.raises(UntrustedModel, match="model.joblib is a joblib file"):
        load_model(tmp_path / "m")
    predictions = predict_in_fresh_process(tmp_path / "m", frame, tmp_path, trust=True)
    np.testing.assert_array_equal(predictions, model.predict(frame))


def test_adopted_pickle_is_scanned_at_once(tmp_path: Path) -> None:
    x, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    (tmp_path / "good.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(x, y)))
    info = adopt_pickle(tmp_path / "good.pkl", tmp_path / "m", flavor="sklearn")
    assert info.settings == {"format": "pickle", "file": "good.pkl", "method": "predict"}
    assert load_model(tmp_path / "m", trust=True).predict(x).shape == (20,)
    marker = tmp_path / "pwned"
    (tmp_path / "bad.pkl").write_bytes(pickle.dumps(SystemCall(marker)))
    with pytest.raises(UnsafeModel, match="posix.system"):
        adopt_pickle(tmp_path / "bad.pkl", tmp_path / "m2", flavor="sklearn")
    assert not (tmp_path / "m2").exists() and not marker.exists()
    with pytest.raises(UnsupportedModel, match="pyfunc flavor does not load pickle"):
        adopt_pickle(tmp_path / "good.pkl", tmp_path / "m3", flavor="pyfunc")


def test_load_warns_on_another_major_version(tmp_path: Path) -> None:
    save_model(DecisionTreeRegressor().fit([[0.0], [1.0]], [0.0, 1.0]), tmp_path / "m")
    description = tmp_path / "m/modelyard.json"
    text = description.read_text()
    description.write_text(text.replace('"scikit-learn": "', '"scikit-learn": "0'))
    with pytest.warns(EnvironmentMismatch, match="saved with scikit-learn 01"):
        load_model(tmp_path / "m")


def test_bad_input_is_named(tmp_path: Path) -> None:
    model = DecisionTreeRegressor().fit([[0.0], [1.0]], [0.0, 1.0])
    with pytest.raises(ConfigurationError, match="unknown sklearn serialization 'cloudpickle'"):
        save_model(model, tmp_path / "a", serialization="cloudpickle")
    with pytest.raises(
        ConfigurationError,
        match="Regressor cannot predict with 'transform'; use one of predict",
    ):
        save_model(model, tmp_path / "b", method="transform")
    with pytest.raises(ConfigurationError, match="unknown sklearn options: compress"):
        save_model(model, tmp_path / "c", compress=3)
    (tmp_path / "d").mkdir()
    (tmp_path / "d/other").write_text("x")
    with pytest.raises(UnsupportedModel, match="the folder is not empty"):
        save_model(model, tmp_path / "d")
    with pytest.raises(UnsupportedModel, match="holds no modelyard.json"):
        load_model(tmp_path / "d")
    (tmp_path / "d/modelyard.json").write_text("{}")
    with pytest.raises(UnsupportedModel, match="is not a valid model description"):
        load_model(tmp_path / "d")
    with pytest.raises(UnsupportedModel, match="unknown flavor 'keras'"):
        save_model(model, tmp_path / "e", flavor="keras")
    with pytest.raises(UnsupportedModel, match="no flavor can save a builtins.dict"):
        save_model({}, tmp_path / "f")
    shutil.rmtree(tmp_path / "d")
