"""`modelyard optimize distill`: the student factory is Python code the operator names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.cli.test_optimize import LOOSE, logged
from tests.cli.test_registry import home, ok, run
from tests.optimize.conftest import digits, digits_mlp
from tests.optimize.models import DigitsMLP

_ = (home, digits, digits_mlp, logged)  # fixtures: a home with mlp:1 logged, its eval file
STUDENT = "tests.cli.test_distill:tiny"


def tiny() -> DigitsMLP:
    """The student the tests name with --student."""
    return DigitsMLP(hidden=16, depth=1)


@pytest.fixture
def transfer(digits: Any, tmp_path: Path) -> Path:
    x, y, _, _ = digits
    np.savez(tmp_path / "train.npz", X=x[:400], y=y[:400])
    return tmp_path / "train.npz"


def test_distill_registers_the_student(logged: Path, transfer: Path) -> None:
    out = ok("optimize", "distill", "mlp:1", "--student", STUDENT,
             "--data", str(transfer), "--eval", str(logged), "--epochs", "3",
             "--init", '{"hidden": 16, "depth": 1}', "--force", "--json", *LOOSE)  # fmt: skip
    result = json.loads(out)
    assert result["version"] == "mlp:2" and result["report"]["step"] == "distill"
    assert result["report"]["settings"]["alpha"] == 0.5  # the .npz held y: labels mixed in
    assert "mlp:1 -> mlp:2 (distill: " in ok("lineage", "mlp:2")


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ("tests.cli.test_distill", "must be 'package.module:factory'"),
        ("tests.cli.nowhere:tiny", "cannot import the student factory"),
        ("tests.cli.test_distill:LOOSE", "is not a function or class"),
    ],
)
def test_a_bad_student_flag_is_refused(
    logged: Path, transfer: Path, student: str, message: str
) -> None:
    code, _, err = run("optimize", "distill", "mlp:1", "--student", student,
                       "--data", str(transfer), "--eval", str(logged))  # fmt: skip
    assert code == 1 and message in err


def test_init_must_be_a_json_object(logged: Path, transfer: Path) -> None:
    code, _, err = run("optimize", "distill", "mlp:1", "--student", STUDENT, "--data",
                       str(transfer), "--eval", str(logged), "--init", "[16]")  # fmt: skip
    assert code == 1 and "--init must be a JSON object" in err
