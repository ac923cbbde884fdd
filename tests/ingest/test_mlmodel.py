"""MLflow model folders read as untrusted data: paths, pickles, custom code, signatures.

These folders are written by hand (the files MLflow writes, in its layout), so they need no
MLflow; tests/ingest/test_mlflow.py checks folders a real MLflow wrote.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard import Yard
from modelyard.errors import (
    ConfigurationError,
    SourceUnavailable,
    UnsafeModel,
    UnsupportedModel,
    UntrustedModel,
)
from modelyard.flavors import load_model
from modelyard.ingest import (
    MlflowServer,
    check_uri,
    convert_mlmodel,
    is_mlflow_folder,
    read_mlmodel,
    translate_signature,
)

SIGNATURE = {
    "inputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1, 4]}}]',
    "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]',
}


def mlmodel(folder: Path, flavors: dict[str, object], **extra: object) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text(yaml.safe_dump({"flavors": flavors, **extra}))
    return folder


def fitted() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), x


def pickled_folder(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    model, x = fitted()
    folder = mlmodel(
        tmp_path / "pickled",
        {"sklearn": {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}},
        signature=SIGNATURE,
    )
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    return folder, x, model.predict(x)


def test_a_pickle_is_refused_untrusted_and_resaved_as_skops_when_trusted(tmp_path: Path) -> None:
    folder, x, expected = pickled_folder(tmp_path)
    assert is_mlflow_folder(folder)
    with pytest.raises(UntrustedModel, match="--trust-pickle"):
        convert_mlmodel(folder, tmp_path / "refused")
    info = convert_mlmodel(folder, tmp_path / "out", trust=True)
    assert (info.flavor, info.settings["format"]) == ("sklearn", "skops")
    assert info.signature is not None and info.signature.inputs[0].shape == [-1, 4]
    np.testing.assert_array_equal(load_model(tmp_path / "out").predict(x), expected)


def test_log_adopts_a_pickle_that_then_needs_trust(tmp_path: Path) -> None:
    folder, x, expected = pickled_folder(tmp_path)
    yard = Yard(home_settings(tmp_path))
    version = yard.log_model(folder, name="adopted")
    assert version.flavor == "sklearn" and version.signature is not None
    with pytest.raises(UntrustedModel):
        yard.load_model(version.ref)
    np.testing.assert_array_equal(yard.load_model(version.ref, trust=True).predict(x), expected)
    yard.close()


def home_settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    from modelyard import Settings

    return Settings(home=tmp_path / "home")


class Boom:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, ("echo pwned",))


def test_a_malicious_pickle_is_refused_even_when_trusted(tmp_path: Path) -> None:
    folder = mlmodel(tmp_path / "evil", {"sklearn": {"pickled_model": "model.pkl"}})
    (folder / "model.pkl").write_bytes(pickle.dumps(Boom()))
    with pytest.raises(UnsafeModel, match="system"):
        convert_mlmodel(folder, tmp_path / "out", trust=True)
    with pytest.raises(UnsafeModel, match="system"):
        convert_mlmodel(folder, tmp_path / "out2", adopt_pickles=True)


@pytest.mark.parametrize(
    "flavors",
    [
        {"sklearn": {"pickled_model": "../../etc/passwd", "serialization_format": "skops"}},
        {"sklearn": {"pickled_model": "/etc/passwd", "serialization_format": "skops"}},
        {"onnx": {"data": "../outside.onnx"}},
        {"xgboost": {"data": "../m.ubj", "model_class": "xgboost.core.Booster"}},
        {"lightgbm": {"data": "../m.txt", "model_class": "lightgbm.basic.Booster"}},
        {"pytorch": {"model_data": "../data"}},
    ],
)
def test_paths_out_of_the_folder_are_refused(tmp_path: Path, flavors: dict[str, object]) -> None:
    (tmp_path / "outside.onnx").write_bytes(b"x")
    folder = mlmodel(tmp_path / "crafted", flavors)
    with pytest.raises(UnsupportedModel, match="climbs out|absolute"):
        convert_mlmodel(folder, tmp_path / "out", trust=True)


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = mlmodel(tmp_path / "linked", {"onnx": {"data": "model.onnx"}})
    (tmp_path / "secret").write_bytes(b"x")
    (folder / "model.onnx").symlink_to(tmp_path / "secret")
    with pytest.raises(UnsupportedModel, match="link"):
        convert_mlmodel(folder, tmp_path / "out")


def test_custom_code_and_odd_files_are_refused(tmp_path: Path) -> None:
    custom = mlmodel(tmp_path / "custom", {"python_function": {"loader_module": "evil"}})
    with pytest.raises(UnsupportedModel, match="never runs"):
        convert_mlmodel(custom, tmp_path / "out")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "MLmodel").write_text("flavors: [unclosed")
    with pytest.raises(UnsupportedModel, match="YAML"):
        read_mlmodel(bad)
    (bad / "MLmodel").write_text("just text")
    with pytest.raises(UnsupportedModel, match="flavors"):
        read_mlmodel(bad)
    (bad / "MLmodel").write_text("a: " + "x" * (1 << 20))
    with pytest.raises(UnsupportedModel, match="too large"):
        read_mlmodel(bad)
    xgb = mlmodel(tmp_path / "xgb", {"xgboost": {"data": "m.xgb", "model_class": "os.system"}})
    with pytest.raises(UnsupportedModel, match="not a class of XGBoost"):
        convert_mlmodel(xgb, tmp_path / "o1")
    xgb = mlmodel(tmp_path / "xgb2", {"xgboost": {"data": "m.xgb"}})
    with pytest.raises(UnsupportedModel, match="binary format"):
        convert_mlmodel(xgb, tmp_path / "o2")
    pt2 = mlmodel(tmp_path / "pt2", {"pytorch": {"serialization_format": "pt2"}})
    with pytest.raises(UnsupportedModel, match="pt2"):
        convert_mlmodel(pt2, tmp_path / "o3", trust=True)
    torch = mlmodel(tmp_path / "torch", {"pytorch": {"model_data": "data"}})
    with pytest.raises(UntrustedModel, match="--trust-pickle"):
        convert_mlmodel(torch, tmp_path / "o4")
    lgb = mlmodel(tmp_path / "lgb", {"lightgbm": {"data": "model.skops",
                  "model_class": "lightgbm.sklearn.LGBMClassifier",
                  "serialization_format": "skops"}})  # fmt: skip
    with pytest.raises(UntrustedModel, match="LightGBM"):
        convert_mlmodel(lgb, tmp_path / "o5")


def test_signatures_translate() -> None:
    tensor = translate_signature(SIGNATURE)
    assert tensor is not None and tensor.content_type == "np"
    assert [(s.name, s.datatype) for s in tensor.outputs] == [("output-0", "INT64")]
    columns = translate_signature(
        {"inputs": '[{"type": "double", "name": "a"}, {"type": "string", "name": "b"}]'}
    )
    assert columns is not None and columns.content_type == "pd"
    assert [(s.name, s.datatype, s.shape) for s in columns.inputs] == [
        ("a", "FP64", [-1]),
        ("b", "BYTES", [-1]),
    ]
    named = translate_signature(
        {
            "inputs": '[{"type": "tensor", "name": "x", "tensor-spec": '
            '{"dtype": "float32", "shape": [-1, 2]}}]'
        }  # fmt: skip
    )
    assert named is not None and named.content_type == "dict"
    assert translate_signature(None) is None
    assert translate_signature({"inputs": '[{"type": "datetime", "name": "t"}]'}) is None
    assert translate_signature({"inputs": "not json"}) is None


def test_examples_are_kept_and_broken_ones_left_behind(tmp_path: Path) -> None:
    model, x = fitted()
    folder, _, _ = pickled_folder(tmp_path)
    example_info = {"artifact_path": "input_example.json", "type": "dataframe"}
    import yaml

    recorded = yaml.safe_load((folder / "MLmodel").read_text())
    recorded["saved_input_example_info"] = example_info
    (folder / "MLmodel").write_text(yaml.safe_dump(recorded))
    (folder / "input_example.json").write_text(json.dumps({"columns": ["a"], "data": "oops"}))
    assert convert_mlmodel(folder, tmp_path / "o1", trust=True).example is None
    recorded["saved_input_example_info"] = {**example_info, "type": "ndarray"}
    (folder / "MLmodel").write_text(yaml.safe_dump(recorded))
    (folder / "input_example.json").write_text(json.dumps(x[:2].tolist()))
    info = convert_mlmodel(folder, tmp_path / "o2", trust=True)
    assert info.example == "np"
    assert load_model(tmp_path / "o2").input_example().shape == (2, 4)


def test_tracking_uris_and_unreachable_servers() -> None:
    assert check_uri("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    for uri in ("sqlite:///mlflow.db", "./mlruns", "file:///tmp/mlruns"):
        with pytest.raises(ConfigurationError, match="mlflow server"):
            check_uri(uri)
    server = MlflowServer.from_env("http://127.0.0.1:9", {"MLFLOW_TRACKING_TOKEN": "t"})
    with pytest.raises(SourceUnavailable, match="cannot reach"):
        list(server.models())
    server.close()
    basic = MlflowServer.from_env(
        "http://127.0.0.1:9",
        {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "p",
         "MLFLOW_TRACKING_INSECURE_TLS": "true"},
    )  # fmt: skip
    assert basic.client.auth is not None
    basic.close()
