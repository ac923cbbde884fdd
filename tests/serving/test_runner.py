"""Runner: a batch of requests through a real loaded model, whatever shape it answers in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modelyard.errors import InferenceError
from modelyard.flavors import load_model, save_model
from modelyard.serving import Request, Runner
from tests.flavors.pyfunc_models import Picky, Shapes

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


def test_one_bad_request_fails_alone_not_its_whole_batch(tmp_path: Path) -> None:
    save_model(Picky(), tmp_path / "picky", input_example=ROWS[0])
    picky = Runner(load_model(tmp_path / "picky", trust=True), name="picky:1")
    good, bad = Request({"input-0": ROWS[0]}), Request({"input-0": -ROWS[1]})
    answers = picky([good, bad, good])
    assert isinstance(answers[1], InferenceError) and "negative values" in str(answers[1])
    for answer in answers[0], answers[2]:
        assert not isinstance(answer, Exception)
        np.testing.assert_array_equal(answer["output-0"], [3.0, 12.0])
    with pytest.raises(InferenceError, match="negative values"):
        picky([bad])
