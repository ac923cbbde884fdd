from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelyard import Yard
from modelyard.cli._optimize import read_eval
from modelyard.errors import ConfigurationError, InvalidInput
from tests.cli.test_registry import home, ok, run
from tests.optimize.conftest import digits, digits_mlp

_ = (home, digits, digits_mlp)  # fixtures: a fresh MODELYARD_HOME per test, a trained MLP


@pytest.fixture
def logged(
    home: Path, digits_mlp: Any, digits: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    # The operator allows the test models' classes, which the logged torch version names.
    monkeypatch.setenv("MODELYARD_TRUSTED_MODULES", '["tests"]')
    _, _, x, y = digits
    with Yard() as yard:
        yard.log_model(digits_mlp, name="mlp", input_example=x[:5],
                       options={"export": False, "init": {"hidden": 64}})  # fmt: skip
    np.savez(tmp_path / "eval.npz", X=x, y=y)
    return tmp_path / "eval.npz"


# int8 of a small MLP on a CPU may answer slower (the limit is tested on reports, not timings).
LOOSE = ("--max-slowdown", "1000")


def test_quantize_prints_the_report_and_registers(logged: Path) -> None:
    out = ok("optimize", "quantize", "mlp:1", "--eval", str(logged), "--alias", "int8", *LOOSE)
    assert "quantize of mlp:1 (dtype=int8" in out and "| size on disk |" in out
    assert "registered mlp:2 (parent mlp:1)" in out
    assert ok("optimize", "report", "mlp@int8") in out
    lineage = ok("lineage", "mlp:2")
    assert (
        "mlp:1 -> mlp:2 (quantize: dtype=int8, method=dynamic, modules=Linear,LSTM,GRU; " in lineage
    )
    assert re.search(r"x (smaller|larger), [0-9.]+x (faster|slower) at batch 64, metric ", lineage)
    stored = json.loads(ok("optimize", "report", "mlp:2", "--json"))
    assert stored["step"] == "quantize" and stored["parent"] == "mlp:1"
    half = json.loads(ok("optimize", "quantize", "mlp:1", "--eval", str(logged), "--dtype",
                         "float16", "--json", *LOOSE))  # fmt: skip
    assert half["version"] == "mlp:3" and half["report"]["settings"] == {"dtype": "float16"}


def test_static_int8_of_a_torch_version(logged: Path, digits: Any, tmp_path: Path) -> None:
    x, _, _, _ = digits
    np.savez(tmp_path / "calibration.npz", X=x[:128])
    out = ok("optimize", "quantize", "mlp:1", "--eval", str(logged), "--method", "static",
             "--calibration", str(tmp_path / "calibration.npz"), *LOOSE)  # fmt: skip
    assert "quantize of mlp:1 (dtype=int8, method=static, backend=x86-pt2e)" in out
    assert "registered mlp:2 (parent mlp:1)" in out


def test_prune_refused_then_forced(logged: Path) -> None:
    code, _, err = run("optimize", "prune", "mlp:1", "--eval", str(logged), "--sparsity", "0.95",
                       *LOOSE)  # fmt: skip
    assert code == 1 and "error: prune of mlp:1 refused: accuracy changed by" in err
    assert "(pass --force to register it anyway" in err and "force=True" not in err
    out = ok("optimize", "prune", "mlp:1", "--eval", str(logged), "--sparsity", "0.95", "--force")
    assert "forced" in out and "registered mlp:2" in out
    out = ok("optimize", "prune", "mlp:1", "--eval", str(logged), "--layers", "layers.4,layers.5",
             "--force", "--structured")  # fmt: skip
    assert "prune of mlp:1 (layers=layers.4,layers.5)" in out


def test_errors_are_one_line(logged: Path, tmp_path: Path) -> None:
    code, _, err = run("optimize", "convert", "mlp:1", "--eval", str(tmp_path / "none.npz"))
    assert code == 1 and err.startswith("error: no evaluation file at")
    code, _, err = run("optimize", "graph", "mlp:1", "--eval", str(logged))
    assert code == 1 and "graph optimization works on onnx versions, not torch" in err
    code, _, err = run("optimize", "report", "mlp:1")
    assert code == 1 and "not made by an optimization step" in err


def test_read_eval(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0], "label": [0, 1]})
    frame.to_csv(tmp_path / "e.csv", index=False)
    frame.to_parquet(tmp_path / "e.parquet")
    for name in ("e.csv", "e.parquet"):
        inputs, truth = read_eval(tmp_path / name, "label")
        assert inputs.tolist() == [[1.0, 3.0], [2.0, 4.0]] and truth.tolist() == [0, 1]
        assert read_eval(tmp_path / name, "label", labels=False)[0].shape == (2, 2)
    with pytest.raises(InvalidInput, match="no label column 'y'"):
        read_eval(tmp_path / "e.csv", "y")
    np.savez(tmp_path / "x.npz", X=np.ones((2, 2)))
    assert read_eval(tmp_path / "x.npz", "y", labels=False)[1] is None
    with pytest.raises(InvalidInput, match="must hold arrays named X and y"):
        read_eval(tmp_path / "x.npz", "y")
    (tmp_path / "e.txt").write_text("1,2")
    with pytest.raises(ConfigurationError, match="must be .npz, .parquet or .csv"):
        read_eval(tmp_path / "e.txt", "y")


def test_a_model_logged_from_a_dataframe_converts_from_a_table(home: Path, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    with Yard() as yard:
        model = LogisticRegression(max_iter=500).fit(x, y)
        yard.log_model(model, name="iris", input_example=x[:5])
    x.assign(species=y).to_parquet(tmp_path / "test.parquet")
    out = ok("optimize", "convert", "iris:latest", "--eval", str(tmp_path / "test.parquet"),
             "--target", "species", *LOOSE)  # fmt: skip
    assert "registered iris:2 (parent iris:1)" in out
    frame, truth = read_eval(tmp_path / "test.parquet", "species", columns=True)
    assert list(frame.columns) == list(x.columns) and truth.tolist() == y.tolist()


def test_torch_export_prints_nothing_but_the_report(logged: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]  # the test models' module, tests.*, imports
    result = subprocess.run(
        [sys.executable, "-m", "modelyard", "optimize", "convert", "mlp:1", "--eval",
         str(logged), *LOOSE], cwd=root, env=dict(os.environ), capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "convert of mlp:1" in result.stdout
