from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import ConfigurationError, UnsupportedModel, UntrustedModel
from modelyard.flavors import PythonModel, load_model, save_model
from tests.flavors.conftest import predict_in_fresh_process
from tests.flavors.pyfunc_models import Scaler


@pytest.fixture
def factor(tmp_path: Path) -> Path:
    file = tmp_path / "factor.txt"
    file.write_text("3")
    return file


def test_round_trip_in_a_fresh_process(tmp_path: Path, factor: Path) -> None:
    x = np.arange(6.0).reshape(3, 2)
    info = save_model(
        Scaler(offset=1.0),
        tmp_path / "m",
        input_example=x,
        artifacts={"factor": factor},
        init={"offset": 1.0},
    )
    assert info.flavor == "pyfunc"
    assert info.settings["class"] == "tests.flavors.pyfunc_models:Scaler"
    assert (tmp_path / "m/code/tests/flavors/pyfunc_models.py").is_file()
    assert info.signature is not None and info.signature.outputs[0].datatype == "FP64"
    predictions = predict_in_fresh_process(tmp_path / "m", x, tmp_path, trust=True)
    np.testing.assert_array_equal(predictions, x * 3 + 1)


def test_stored_code_needs_trust(tmp_path: Path, factor: Path) -> None:
    save_model(Scaler(), tmp_path / "m", artifacts={"factor": factor})
    with pytest.raises(UntrustedModel, match="is a stored Python code file"):
        load_model(tmp_path / "m")
    assert load_model(tmp_path / "m", trust=True).predict([2.0]).tolist() == [6.0]


def test_changed_code_loads_beside_the_imported_module(tmp_path: Path, factor: Path) -> None:
    save_model(Scaler(), tmp_path / "m", artifacts={"factor": factor})
    stored = tmp_path / "m/code/tests/flavors/pyfunc_models.py"
    stored.write_text(stored.read_text().replace("* self.factor", "* self.factor * 10"))
    loaded = load_model(tmp_path / "m", trust=True)
    assert loaded.predict([1.0]).tolist() == [30.0]
    assert type(loaded.native) is not Scaler  # the stored code, not the imported module
    # Importing it wrote nothing into the folder (a cached folder is re-verified on open).
    assert not list((tmp_path / "m").rglob("__pycache__"))


def test_code_paths_are_stored(tmp_path: Path, factor: Path) -> None:
    helper = tmp_path / "helpers.py"
    helper.write_text("X = 1\n")
    save_model(Scaler(), tmp_path / "m", artifacts={"factor": factor}, code_paths=[helper])
    assert (tmp_path / "m/code/helpers.py").read_text() == "X = 1\n"
    with pytest.raises(ConfigurationError, match="missing.py: it does not exist"):
        save_model(Scaler(), tmp_path / "n", artifacts={"factor": factor},
                   code_paths=[tmp_path / "missing.py"])  # fmt: skip


class InMain(PythonModel):
    def predict(self, inputs: object) -> object:
        return inputs


def test_classes_from_main_and_bad_options_are_refused(tmp_path: Path) -> None:
    model = InMain()
    type(model).__module__ = "__main__"
    try:
        with pytest.raises(UnsupportedModel, match="InMain is defined in __main__"):
            save_model(model, tmp_path / "a")
    finally:
        type(model).__module__ = __name__
    with pytest.raises(ConfigurationError, match="unknown pyfunc options: weights"):
        save_model(InMain(), tmp_path / "b", weights=1)
    with pytest.raises(NotImplementedError):
        PythonModel().predict(1)


def test_missing_class_in_stored_code(tmp_path: Path, factor: Path) -> None:
    save_model(Scaler(), tmp_path / "m", artifacts={"factor": factor})
    description = tmp_path / "m/modelyard.json"
    description.write_text(description.read_text().replace(":Scaler", ":Gone"))
    with pytest.raises(UnsupportedModel, match="has no class Gone in the stored code"):
        load_model(tmp_path / "m", trust=True)
