"""Knowledge distillation: a smaller torch student trained on a teacher's answers, registered as
the teacher's child (relation `distill`) and answering as the teacher did.

Tolerance: a student a tenth of the teacher's size is accepted within 5% (relative) of the
teacher's accuracy on the held-out digits; the default 1% is for steps that keep the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression, Ridge

from modelyard import Yard
from modelyard.errors import ConfigurationError, UnsupportedModel
from tests.flavors.conftest import predict_in_fresh_process
from tests.optimize.models import DigitsMLP, one_thread, train

FAST = {"max_slowdown": None, "tolerance": 0.05}


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def teacher(digits: Any) -> Any:
    """A DigitsMLP of hidden width 128 (about 35,000 parameters)."""
    torch.manual_seed(0)  # the initial weights too: the same teacher whatever ran before
    with one_thread():
        return train(DigitsMLP(hidden=128), digits[0], digits[1], epochs=12)


@pytest.fixture
def mlp(yard: Yard, teacher: Any, digits: Any) -> str:
    version = yard.log_model(teacher, name="mlp", input_example=digits[2][:5],
                             options={"export": False, "init": {"hidden": 128}})  # fmt: skip
    return version.ref


@pytest.fixture
def logistic(yard: Yard, digits: Any) -> str:
    x, y, x_test, _ = digits
    model = LogisticRegression(max_iter=200).fit(x, y)
    return yard.log_model(model, name="logistic", input_example=x_test[:5]).ref


def small(hidden: int = 16, **arguments: Any) -> Any:
    return lambda: DigitsMLP(hidden=hidden, depth=2, **arguments)


def test_a_torch_teacher_distills_into_a_smaller_student(yard: Yard, mlp: str, digits: Any) -> None:
    x, _, x_test, y_test = digits
    result = yard.optimize.distill(mlp, student=small(), data=x, eval_data=(x_test, y_test),
                                   epochs=30, lr=0.01, init={"hidden": 16, "depth": 2},
                                   **FAST)  # fmt: skip
    version, report = result.version, result.report
    assert report.accepted and report.step == "distill"
    assert report.size_ratio > 8  # 16 hidden units where the teacher has 128
    assert report.after.metric >= report.before.metric * 0.95
    assert [(e.parent, e.child, e.relation) for e in yard.lineage(version.ref).edges] == [
        (mlp, version.ref, "distill")
    ]
    assert version.tags == {"optimize.step": "distill"}
    assert version.params["optimize.temperature"] == "2.0"
    assert float(version.params["optimize.agreement"]) >= 0.9
    assert "optimize.alpha" not in version.params  # no labels given: soft targets only
    assert version.signature == yard.get_version(mlp).signature
    loaded = yard.load_model(version.ref)
    assert loaded.info.settings["format"] == "class"  # init rebuilds it: no program traced


def test_a_scikit_learn_teacher_gets_a_student_answering_its_labels(
    yard: Yard, logistic: str, digits: Any
) -> None:
    x, y, x_test, y_test = digits
    result = yard.optimize.distill(logistic, student=small(32), data=(x, y), epochs=15,
                                   eval_data=(x_test, y_test), **FAST)  # fmt: skip
    assert result.report.accepted
    assert result.version.params["optimize.alpha"] == "0.5"
    assert result.version.signature == yard.get_version(logistic).signature
    labels = yard.load_model(result.version.ref).predict(x_test)
    expected = yard.load_model(logistic).predict(x_test)
    assert labels.dtype == expected.dtype and labels.shape == expected.shape
    assert np.mean(labels == expected) >= 0.9
    settings = yard.load_model(result.version.ref).info.settings
    assert settings["format"] == "export"  # the wrapper giving labels is a traced program


def test_an_onnx_teacher_gives_its_probabilities(yard: Yard, logistic: str, digits: Any) -> None:
    x, _, x_test, y_test = digits
    onnx = yard.optimize.convert(logistic, eval_data=(x_test, y_test), max_slowdown=None).version
    result = yard.optimize.distill(onnx.ref, student=small(32), data=x, epochs=15,
                                   eval_data=(x_test, y_test), **FAST)  # fmt: skip
    assert result.report.accepted
    assert result.version.signature == onnx.signature
    assert float(result.version.params["optimize.agreement"]) >= 0.9


def test_a_regressor_is_distilled_with_the_squared_error(yard: Yard, digits: Any) -> None:
    x, y, x_test, y_test = digits
    target, truth = y.astype(np.float32), y_test.astype(np.float32)
    yard.log_model(Ridge().fit(x, target), name="ridge", input_example=x_test[:5])
    result = yard.optimize.distill("ridge:1", student=small(32, classes=1), data=x, epochs=30,
                                   eval_data=(x_test, truth), metric="r2",
                                   max_slowdown=None, tolerance=0.1)  # fmt: skip
    assert result.report.accepted
    assert "optimize.temperature" not in result.version.params
    assert result.version.signature == yard.get_version("ridge:1").signature


def test_answers_are_the_same_in_a_fresh_process(
    yard: Yard, mlp: str, logistic: str, digits: Any, tmp_path: Path
) -> None:
    x, _, x_test, y_test = digits
    refs = [
        yard.optimize.distill(teacher, student=small(), data=x, epochs=2, force=True,
                              eval_data=(x_test, y_test), max_slowdown=None).version.ref
        for teacher in (mlp, logistic)
    ]  # fmt: skip
    for ref in refs:
        folder = yard.model_folder(yard.get_version(ref))
        fresh = predict_in_fresh_process(folder, x_test[:64], tmp_path)
        here = yard.load_model(ref).predict(x_test[:64])
        assert fresh.dtype == here.dtype and np.array_equal(fresh, here)


def test_the_same_seed_trains_the_same_student(yard: Yard, logistic: str, digits: Any) -> None:
    x, _, x_test, y_test = digits
    refs = [
        yard.optimize.distill(logistic, student=small(), data=x[:300], epochs=2, force=True,
                              eval_data=(x_test, y_test), max_slowdown=None).version.ref
        for _ in range(2)
    ]  # fmt: skip
    first, second = (yard.load_model(ref).native.state_dict() for ref in refs)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_the_callers_module_is_left_untrained(yard: Yard, logistic: str, digits: Any) -> None:
    x, _, x_test, y_test = digits
    student = DigitsMLP(hidden=16, depth=2)
    before = {name: tensor.clone() for name, tensor in student.state_dict().items()}
    yard.optimize.distill(logistic, student=student, data=x[:200], epochs=1, force=True,
                          eval_data=(x_test, y_test), max_slowdown=None)  # fmt: skip
    assert all(torch.equal(before[name], student.state_dict()[name]) for name in before)


@pytest.mark.parametrize(
    ("student", "message"),
    [
        ("DigitsMLP", "student must be a torch.nn.Module or a function"),
        (lambda: "DigitsMLP", "returned a str, not a torch.nn.Module"),
        (small(inputs=32), r"cannot take the teacher's inputs \(shape \[64\] per row\)"),
        (small(classes=5), r"answers \[5\] per row where the teacher gives \[10\]"),
    ],
)
def test_a_student_that_cannot_learn_is_refused(
    yard: Yard, mlp: str, digits: Any, student: Any, message: str
) -> None:
    x, _, x_test, y_test = digits
    with pytest.raises(ConfigurationError, match=message):
        yard.optimize.distill(mlp, student=student, data=x, eval_data=(x_test, y_test))
    assert [v.ref for v in yard.list_versions("mlp")] == [mlp]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"data": np.zeros((0, 64), np.float32)}, "has no rows"),
        ({"data": np.zeros(64, np.float32)}, "rows of numbers"),
        ({"data": (np.zeros((4, 64), np.float32), [0, 1])}, "4 rows of inputs but 2 labels"),
        ({"data": (np.zeros((2, 64), np.float32), [0, 11])}, "classes the teacher does not"),
        ({"temperature": 0}, "temperature must be above 0"),
        ({"temperature": "hot"}, "temperature must be above 0"),
        ({"alpha": 1.5}, r"alpha must be a fraction in \[0, 1\]"),
        ({"epochs": 0}, "epochs must be a whole number"),
        ({"lr": -1.0}, "lr must be above 0"),
    ],
)
def test_bad_settings_are_refused(
    yard: Yard, mlp: str, digits: Any, options: dict[str, Any], message: str
) -> None:
    x, _, x_test, y_test = digits
    arguments = {"data": x, "epochs": 1, **options}
    with pytest.raises(ConfigurationError, match=message):
        yard.optimize.distill(mlp, student=small(), eval_data=(x_test, y_test), **arguments)


def test_string_labels_cannot_be_answered_by_a_torch_student(yard: Yard, digits: Any) -> None:
    x, y, x_test, y_test = digits
    names = np.array(list("abcdefghij"))
    model = LogisticRegression(max_iter=500).fit(x[:300], names[y[:300]])
    yard.log_model(model, name="named", input_example=x_test[:5])
    with pytest.raises(UnsupportedModel, match="a torch student answers numbers"):
        yard.optimize.distill("named:1", student=small(), data=x,
                              eval_data=(x_test, names[y_test]))  # fmt: skip


def test_a_teacher_without_an_example_is_refused(yard: Yard, teacher: Any, digits: Any) -> None:
    x, _, x_test, y_test = digits
    yard.log_model(teacher, name="bare", options={"init": {"hidden": 128}})
    with pytest.raises(UnsupportedModel, match="input example"):
        yard.optimize.distill("bare:1", student=small(), data=x, eval_data=(x_test, y_test))


@pytest.mark.parametrize("make_yard", ["asgi"], indirect=True)
def test_through_the_api(make_yard: Any, digits: Any) -> None:
    remote = make_yard()
    x, y, x_test, y_test = digits
    remote.log_model(LogisticRegression(max_iter=200).fit(x, y), name="logistic",
                     input_example=x_test[:5])  # fmt: skip
    result = remote.optimize.distill("logistic:1", student=small(), data=x[:300], epochs=2,
                                     eval_data=(x_test, y_test), force=True)  # fmt: skip
    assert remote.lineage(result.version.ref).edges[0].relation == "distill"
    assert remote.optimize.report(result.version.ref) == result.report
