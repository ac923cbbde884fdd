"""Runner: a batch of requests through a real loaded model, whatever shape it answers in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.flavors import load_model, save_model
from modelyard.serving import Request, Runner
from tests.flavors.pyfunc_models import Shapes

ROWS = [np.arange(6.0).reshape(2, 3), np.arange(3.0).reshape(1, 3) + 10]


def runner(tmp_path: Path, kind: str, *, example: bool = True) -> Runner:
    save_model(Shapes(kind), tmp_path / kind, init={"kind": kind},
               input_example=ROWS[0] if example else None)  # fmt: skip
    return Runner(load_model(tmp_path / kind, trust=True), name=f"m-{kind}")


@pytest.mark.parametrize(
    ("kind", "names"),
    [("dict", ["total", "top"]), ("frame", ["total"]), ("tuple", ["output-0", "output-1"])],
)
def test_outputs_are_named_and_split_per_request(
    tmp_path: Path, kind: str, names: list[str]
) -> None:
    answers = runner(tmp_path, kind)([Request({"input-0": rows}) for rows in ROWS])
    assert [list(answer) for answer in answers] == [names, names]
    np.testing.assert_array_equal(answers[0][names[0]], [3.0, 12.0])
    np.testing.assert_array_equal(answers[1][names[0]], [33.0])


def test_a_batch_wide_answer_falls_back_to_one_call_per_request(tmp_path: Path) -> None:
    answers = runner(tmp_path, "scalar")([Request({"input-0": rows}) for rows in ROWS])
    assert [float(answer["output-0"]) for answer in answers] == [15.0, 33.0]


def test_without_a_signature_anything_goes(tmp_path: Path) -> None:
    unsigned = runner(tmp_path, "dict", example=False)
    unsigned.check(Request({"whatever": ROWS[0]}))  # no signature: nothing to check against
    assert unsigned([Request({"whatever": ROWS[0]})])[0]["total"].tolist() == [3.0, 12.0]
