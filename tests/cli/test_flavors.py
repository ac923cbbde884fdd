"""The command line over model files: a pickle logged with --flavor, the weight diff table and
merge."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file
from sklearn.linear_model import LogisticRegression

from tests.cli.test_registry import home, ok, run
from tests.flavors.malicious import SystemCall

_ = home  # the autouse fixture: a fresh MODELYARD_HOME per test


def weights(folder: Path, scale: float, shape: tuple[int, ...] = (4, 4)) -> Path:
    folder.mkdir()
    save_file({"a": np.full(shape, scale, np.float32), "b": np.ones(3, np.float32)},
              str(folder / "model.safetensors"))  # fmt: skip
    return folder


def test_diff_prints_a_tensor_table_and_merge_makes_a_soup(tmp_path: Path) -> None:
    ok("log", str(weights(tmp_path / "one", 1.0)), "-n", "net")
    ok("log", str(weights(tmp_path / "two", 3.0)), "-n", "net")
    table = ok("versions", "diff", "net:1", "net:2")
    assert "tensor" in table and "max abs" in table
    row = next(line for line in table.splitlines() if "model.safetensors:a" in line)
    assert row.split()[1:] == ["changed", "[4,", "4]", "8", "2", "100.0%"]
    assert "model.safetensors:b" not in table  # unchanged tensors are not listed
    merged = json.loads(ok("versions", "merge", "net:1", "net:2", "--weights", "0.5,0.5",
                           "--alias", "soup", "--json"))  # fmt: skip
    assert merged["number"] == 3 and merged["parents"] == ["net:1", "net:2"]
    as_json = json.loads(ok("versions", "diff", "net:1", "net@soup", "--json"))
    assert as_json["tensors"][0]["max_abs"] == pytest.approx(1.0)


def test_merge_errors_are_one_line(tmp_path: Path) -> None:
    ok("log", str(weights(tmp_path / "one", 1.0)), "-n", "net")
    ok("log", str(weights(tmp_path / "two", 1.0, shape=(2, 2))), "-n", "net")
    code, _, err = run("versions", "merge", "net:1", "net:2")
    assert code == 1 and "tensor 'a'" in err and "Traceback" not in err
    code, _, err = run("versions", "merge", "net:1", "net:2", "--weights", "half")
    assert code == 2 and "expected two numbers" in err


def test_log_a_pickle_with_its_flavor(tmp_path: Path) -> None:
    good = tmp_path / "model.pkl"
    x = np.arange(20.0).reshape(10, 2)
    good.write_bytes(pickle.dumps(LogisticRegression().fit(x, np.arange(10) % 2)))
    assert ok("log", str(good), "-n", "churn", "--flavor", "sklearn").strip() == "churn:1"
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(SystemCall(tmp_path / "pwned")))
    code, _, err = run("log", str(bad), "-n", "churn", "--flavor", "sklearn")
    assert code == 1 and "posix.system" in err
    assert not (tmp_path / "pwned").exists()
