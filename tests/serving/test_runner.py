"""Runner: a batch of requests through a real loaded model, whatever shape it answers in, and
whatever one request's values do to the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modelyard.errors import InferenceError, InputRejected, InvalidInput
from modelyard.flavors import load_model, save_model
from modelyard.serving import Request, Runner
from tests.flavors.pyfunc_models import Picky, Shapes, Spend
from tests.serving.poison_models import Careless

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


def careless(tmp_path: Path, *, ragged: bool = False) -> tuple[Runner, Careless]:
    folder = tmp_path / f"careless-{ragged}"
    save_model(Careless(ragged), folder, input_example=np.ones((1, 3)), init={"ragged": ragged})
    runner = Runner(load_model(folder, trust=True), name="careless:1")
    native = runner.model.native
    native.calls.clear()
    return runner, native


def one(*values: float) -> Request:
    return Request({"input-0": np.array([values], np.float64)})


def test_a_failing_batch_is_bisected_down_to_the_culprit(tmp_path: Path) -> None:
    runner, native = careless(tmp_path)
    requests = [one(i + 1.5, 1.0, 1.0) for i in range(64)]
    requests[37] = one(1.0, -7.5, 1.0)
    answers = runner(requests)
    culprit = answers[37]
    assert isinstance(culprit, InputRejected) and culprit.status_code == 422
    assert (
        str(culprit)
        == "careless:1 failed to predict: ValueError: negative values in [1.0, -7.5, 1.0]"
    )
    for i, answer in enumerate(answers):
        if i != 37:
            assert not isinstance(answer, Exception) and answer["output-0"].tolist() == [i + 3.5]
    assert len(native.calls) <= 1 + 2 * 6  # halves, not 64 calls one by one


def test_rows_answered_in_different_shapes_are_answered_alone(tmp_path: Path) -> None:
    runner, native = careless(tmp_path, ragged=True)
    answers = runner([one(3.0, 1.0, 1.0), one(4.0, 1.0, 1.0), one(5.0, 1.0, 1.0)])
    assert [a["output-0"].tolist() for a in answers if not isinstance(a, Exception)] == [
        [[]], [[0]], [[0, 1]],
    ]  # fmt: skip
    assert native.calls == [3, 1, 1, 1]
    with pytest.raises(InferenceError, match=r"careless:1 failed to predict: its answer is not"):
        runner([Request({"input-0": np.array([[4.0, 1, 1], [5.0, 1, 1]])})])


def test_the_values_fault_is_a_4xx_and_a_bug_a_500(tmp_path: Path) -> None:
    runner, _ = careless(tmp_path)
    good, zero, bug = one(1.0, 2.0, 3.0), one(0.0, 1.0, 1.0), one(2e6, 1.0, 1.0)
    answers = runner([good, zero, bug, one(np.inf, 1.0, 1.0)])
    assert type(answers[3]) is InvalidInput and str(answers[3]) == "infinite values are not taken"
    assert isinstance(answers[1], InputRejected) and "ZeroDivisionError" in str(answers[1])
    assert type(answers[2]) is InferenceError and answers[2].status_code == 500
    assert "RuntimeError: the accumulator overflowed" in str(answers[2])
    assert not isinstance(answers[0], Exception) and answers[0]["output-0"].tolist() == [6.0]


def test_check_conforms_the_request_to_the_signature(tmp_path: Path) -> None:
    frame = pd.DataFrame({"amount": [1.0, 2.0], "country": ["fr", "de"]})
    save_model(Spend(), tmp_path / "spend", input_example=frame)
    spend = Runner(load_model(tmp_path / "spend", trust=True), name="spend:1")
    request = Request({"country": np.array(["fr"], object), "amount": np.array([2.5], np.float32)})
    spend.check(request)
    assert list(request.inputs) == ["amount", "country"]
    assert request.inputs["amount"].dtype == np.float64
    assert spend.answer(request)["output-0"].tolist() == [5.0]
    with pytest.raises(InvalidInput, match="^missing input 'country'; spend:1 takes amount, c"):
        spend.check(Request({"amount": np.array([2.5])}))
