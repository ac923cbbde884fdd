"""`modelyard import mlflow` and `modelyard log` against what a real MLflow wrote (see conftest)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from modelyard import Settings, Yard
from modelyard.cli import app
from modelyard.errors import ModelNotFound, UntrustedModel
from tests.ingest.conftest import MlflowRegistry


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MODELYARD_STORE_URL", "MODELYARD_DATABASE_URL", "MODELYARD_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELYARD_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, err
    return out


def test_import_round_trips(mlflow_registry: MlflowRegistry, home: Path) -> None:
    uri = mlflow_registry.uri
    planned = ok("import", "mlflow", "--tracking-uri", uri, "--dry-run")
    assert "would import iris-skops v3 (sklearn)" in " ".join(planned.split())
    assert "would describe iris-skops (description, 1 tag)" in " ".join(planned.split())
    assert not (home / "registry.db").exists() or not Yard(Settings(home=home)).list_models()

    # Models go in name order: iris-lgb and iris-onnx land, then the pickle stops the import.
    code, _, err = run("import", "mlflow", "--tracking-uri", uri)
    assert code == 1 and "--trust-pickle" in err and "model.pkl" in err
    yard = Yard(Settings(home=home))
    with pytest.raises(ModelNotFound):
        yard.get_model("iris-pickle")
    assert yard.get_version("iris-onnx:1").tags["mlflow.version"] == "1"

    out = ok("import", "mlflow", "--tracking-uri", uri, "--trust-pickle")
    assert "skipped" in out and "iris-onnx v1 -> iris-onnx:1" in " ".join(out.split())
    assert "described iris-skops (description, 1 tag)" in " ".join(out.split())
    again = ok("import", "mlflow", "--tracking-uri", uri, "--trust-pickle", "--json")
    assert {step["action"] for step in json.loads(again)} == {"skipped"}

    logged = mlflow_registry.versions
    for name, number in logged:
        version = yard.get_version(f"{name}:{number}")
        assert version.tags["mlflow.version"] == number
    assert len(yard.list_versions("iris-skops")) == 3

    skops = yard.get_model("iris-skops")
    assert skops.aliases == {"champion": 2, "challenger": 3}
    assert skops.description == "Iris species, logistic regression"
    assert skops.tags == {"owner": "risk-team"}
    assert yard.get_model("iris-xgb").aliases == {"production": 1}
    second = yard.get_version("iris-skops:2")
    assert second.description == "stronger regularisation off"
    assert second.tags["validated_by"] == "alice"
    assert not [key for key in second.tags if key.startswith("mlflow.model.")]
    assert second.params == {"C": "2.0", "solver": "lbfgs"}
    assert second.signature is not None and second.signature["inputs"][0]["shape"] == [-1, 4]
    assert second.run_id is not None
    run_record = yard.registry.get_run(second.run_id)
    assert run_record.params["C"] == "2.0" and run_record.status == "finished"
    history = yard.registry.metric_history(second.run_id, "loss")
    assert [(p.step, p.value) for p in history] == [(1, 0.45), (2, 0.25)]
    assert yard.get_version("iris-skops:3").signature["content_type"] == "pd"  # type: ignore[index]

    inputs = np.asarray(mlflow_registry.inputs)
    for name, number in logged:
        expected = np.asarray(mlflow_registry.answers[name][number])
        model = yard.load_model(f"{name}:{number}", trust=name == "iris-torch")
        given = inputs.astype(np.float32) if name in ("iris-onnx", "iris-torch") else inputs
        if (name, number) == ("iris-skops", "3"):
            import pandas as pd

            assert model.signature is not None
            given = pd.DataFrame(given, columns=[spec.name for spec in model.signature.inputs])
        predicted = model.predict(given)
        if isinstance(predicted, dict):
            predicted = next(iter(predicted.values()))
        np.testing.assert_allclose(np.asarray(predicted), expected, rtol=1e-5, atol=1e-6)
    yard.close()


def test_log_understands_an_mlflow_folder(mlflow_registry: MlflowRegistry, home: Path) -> None:
    folders = mlflow_registry.folders
    expected = np.asarray(json.loads((folders / "answers.json").read_text()))
    inputs = np.asarray(mlflow_registry.inputs)
    assert ok("log", str(folders / "skops"), "--name", "saved").strip() == "saved:1"
    assert ok("log", str(folders / "pickle"), "--name", "saved").strip() == "saved:2"
    yard = Yard(Settings(home=home))
    first = yard.load_model("saved:1")
    np.testing.assert_array_equal(first.predict(inputs), expected)
    assert first.input_example().shape == (2, 4)
    with pytest.raises(UntrustedModel):
        yard.load_model("saved:2")
    np.testing.assert_array_equal(yard.load_model("saved:2", trust=True).predict(inputs), expected)
    yard.close()
