"""The safety rules, on real malicious files: nothing runs, and the error names the import."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from modelyard.errors import UnsafeModel, UntrustedModel
from modelyard.flavors import check_trusted, is_pickle, load_pickle, scan
from tests.flavors.malicious import EvalCall, ExecInModel, SubprocessCall, SystemCall


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def fitted() -> LogisticRegression:
    return LogisticRegression().fit(np.arange(20.0).reshape(10, 2), np.arange(10) % 2)


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        (SystemCall, "posix.system"),
        (SubprocessCall, "subprocess.call"),
        (EvalCall, "builtins.eval"),
        (ExecInModel, "builtins.eval"),
    ],
)
def test_malicious_pickle_is_refused_even_when_trusted(
    tmp_path: Path, marker: Path, payload: type, named: str
) -> None:
    file = tmp_path / "model.pkl"
    file.write_bytes(pickle.dumps(payload(marker)))
    assert named in scan(file)
    with pytest.raises(UnsafeModel, match=f"it imports .*{named}") as caught:
        load_pickle(file, trust=True)
    assert named in caught.value.imports
    assert caught.value.status_code == 403
    assert not marker.exists()


def test_malicious_joblib_is_caught_while_loading(tmp_path: Path, marker: Path) -> None:
    # joblib puts raw array bytes between pickle opcodes, which a static scan cannot walk past;
    # the guarded unpickler still refuses the import before calling it.
    file = tmp_path / "model.joblib"
    joblib.dump({"model": fitted(), "payload": SubprocessCall(marker)}, file)
    with pytest.raises(UnsafeModel, match="subprocess.call"):
        load_pickle(file, trust=True)
    assert not marker.exists()


@pytest.mark.parametrize("compress", [0, 3])
def test_benign_joblib_loads_when_trusted(tmp_path: Path, compress: int) -> None:
    file = tmp_path / "model.joblib"
    model = fitted()
    joblib.dump(model, file, compress=compress)
    loaded = load_pickle(file, trust=True)
    np.testing.assert_array_equal(loaded.coef_, model.coef_)


def test_benign_pickle_loads_only_when_trusted(tmp_path: Path) -> None:
    file = tmp_path / "model.pkl"
    file.write_bytes(pickle.dumps(fitted()))
    with pytest.raises(UntrustedModel, match="model.pkl is a pickle file.*pass trust=True"):
        load_pickle(file)
    assert isinstance(load_pickle(file, trust=True), LogisticRegression)
    assert scan(file) == []


def test_untrusted_joblib_names_its_kind(tmp_path: Path) -> None:
    file = tmp_path / "weights.bin"
    joblib.dump(fitted(), file)
    with pytest.raises(UntrustedModel, match="is a joblib file"):
        load_pickle(file)


def test_check_trusted(tmp_path: Path, marker: Path) -> None:
    file = tmp_path / "x.pt"
    file.write_bytes(pickle.dumps(SystemCall(marker)))
    with pytest.raises(UntrustedModel, match="is a torch file"):
        check_trusted(file, trust=False, kind="torch")
    with pytest.raises(UnsafeModel):
        check_trusted(file, trust=True)


def test_is_pickle(tmp_path: Path) -> None:
    (tmp_path / "a.pkl").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "b.txt").write_text("hello")
    (tmp_path / "c").write_bytes(b"")
    assert is_pickle(tmp_path / "a.pkl")
    assert not is_pickle(tmp_path / "b.txt")
    assert not is_pickle(tmp_path / "c")
