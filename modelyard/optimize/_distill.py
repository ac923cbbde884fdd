"""Knowledge distillation: a smaller torch student trained on its teacher's answers.

The teacher answers the transfer set once. A classifier's answer becomes logits: a torch
teacher's own scores, or the log of a classifier's probabilities (scikit-learn, XGBoost and
LightGBM `predict_proba`, an ONNX graph's `probabilities` output); the student learns the
softened distribution (KL divergence at a temperature, times T² so that the gradients keep their
size as T changes), mixed with cross-entropy on the true labels when the caller gives them. A
regressor's answer is learnt with the mean squared error.

The student answers in the teacher's form: a teacher answering labels (a scikit-learn
classifier) gets a student wrapped in `Answering`, which turns the student's scores into the
teacher's labels and probabilities; that wrapper is saved as an exported program.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelyard._imports import require
from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.flavors import LoadedModel

_FLOOR = 1e-7  # probabilities are clipped here before their log: a 0 would give -inf logits


@dataclass(frozen=True)
class Recipe:
    """How the student is trained."""

    temperature: float = 2.0
    alpha: float = 0.5
    epochs: int = 20
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.temperature, int | float) or not self.temperature > 0:
            raise ConfigurationError(f"temperature must be above 0, not {self.temperature!r}")
        if not isinstance(self.alpha, int | float) or not 0 <= self.alpha <= 1:
            raise ConfigurationError(f"alpha must be a fraction in [0, 1], not {self.alpha!r}")
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a whole number of at least 1")
        if not isinstance(self.lr, int | float) or not self.lr > 0:
            raise ConfigurationError(f"lr must be above 0, not {self.lr!r}")


@dataclass(frozen=True)
class Targets:
    """What the teacher answered for the transfer set, as the student learns it."""

    values: np.ndarray[Any, Any]
    """Logits [N, classes] for a classifier, values [N, k] for a regressor."""
    roles: tuple[str, ...]
    """What each of the teacher's outputs is: logits, labels, probabilities or values."""
    classes: np.ndarray[Any, Any] | None  # the label of each column, for a classifier

    @property
    def classifier(self) -> bool:
        return self.classes is not None


def student_module(student: Any, seed: int) -> Any:
    """A copy of the student module, or what the factory builds (seeded: the same weights each
    time); the caller's own module is left untrained."""
    torch = require("torch", extra="torch")
    if isinstance(student, torch.nn.Module):
        return copy.deepcopy(student)
    if not callable(student):
        raise ConfigurationError(
            f"student must be a torch.nn.Module or a function returning one, not "
            f"{type(student).__qualname__}"
        )
    torch.manual_seed(seed)
    module = student()
    if not isinstance(module, torch.nn.Module):
        raise ConfigurationError(
            f"the student factory returned a {type(module).__qualname__}, not a torch.nn.Module"
        )
    return module


def transfer_set(data: Any) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """The inputs of `data` (X, or a tuple (X, y)), and its labels or None."""
    inputs, labels = data if isinstance(data, tuple) and len(data) == 2 else (data, None)
    if isinstance(inputs, dict | tuple) or hasattr(inputs, "iloc"):
        raise UnsupportedModel(
            "distill takes one array of inputs (rows of numbers); a teacher of named or "
            "several inputs cannot be distilled into a torch student here"
        )
    x = np.asarray(inputs)
    if x.ndim < 2 or x.dtype.kind not in "biuf":
        raise ConfigurationError(
            f"data must be rows of numbers (an array of rank 2 or more), not {x.dtype} of "
            f"shape {x.shape}"
        )
    if len(x) == 0:
        raise ConfigurationError("data, the transfer set, has no rows")
    if labels is None:
        return x, None
    y = np.asarray(labels)
    if len(y) != len(x):
        raise ConfigurationError(f"data has {len(x)} rows of inputs but {len(y)} labels")
    return x, y


def teacher_targets(teacher: LoadedModel, x: np.ndarray[Any, Any], regression: bool) -> Targets:
    """The teacher's answers for `x` as logits (a classifier) or values (a regressor), and what
    each of its outputs is, so that the student can give them too."""
    outputs = _named(teacher.predict(x))
    if regression:
        return _values(outputs)
    probabilities = _probabilities(teacher, x)
    if probabilities is not None:
        logits = np.log(np.clip(probabilities, _FLOOR, 1)).astype(np.float32)
        classes = _classes(teacher, outputs, probabilities)
    else:
        scores = [
            a for a in outputs.values() if a.ndim == 2 and a.shape[1] > 1 and a.dtype.kind == "f"
        ]
        if not scores:
            return _values(outputs)
        logits = scores[0].astype(np.float32)
        classes = np.arange(logits.shape[1])
    roles = tuple(_role(name, array, logits, classes) for name, array in outputs.items())
    return Targets(logits, roles, classes)


def _values(outputs: dict[str, np.ndarray[Any, Any]]) -> Targets:
    if len(outputs) != 1 or next(iter(outputs.values())).dtype.kind not in "iuf":
        raise UnsupportedModel(
            f"the teacher answers {', '.join(outputs)}: a regressor's student learns one "
            "numeric output, a classifier's needs scores or probabilities"
        )
    values = next(iter(outputs.values()))
    return Targets(values.reshape(len(values), -1).astype(np.float32), ("values",), None)


def _probabilities(teacher: LoadedModel, x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """Class probabilities: `predict_proba`, or an ONNX graph's probabilities output (which a
    converted version runs but may not answer)."""
    try:
        return np.asarray(teacher.predict_proba(x), dtype=np.float64)
    except UnsupportedModel:
        pass
    if teacher.flavor.name != "onnx":
        return None
    settings = {key: value for key, value in teacher.info.settings.items() if key != "answer"}
    raw = _named(teacher.flavor.predict(teacher.native, x, settings))
    found = [
        a for n, a in raw.items() if "prob" in n.lower() and a.ndim == 2 and a.dtype.kind == "f"
    ]
    return np.asarray(found[0], dtype=np.float64) if found else None


def _classes(
    teacher: LoadedModel, outputs: dict[str, np.ndarray[Any, Any]], probabilities: Any
) -> np.ndarray[Any, Any]:
    """The label of each probability column: the estimator's `classes_`, else what the teacher
    answered where that column won."""
    width = probabilities.shape[1]
    known = getattr(teacher.native, "classes_", None)
    if known is not None and len(known) == width:
        classes = np.asarray(known)
    else:
        classes = np.arange(width)
        winners = probabilities.argmax(axis=1)
        for array in outputs.values():
            if array.ndim == 1 and array.dtype.kind in "biu":
                for column in range(width):
                    seen = np.unique(array[winners == column])
                    if len(seen) == 1:
                        classes[column] = seen[0]
    if classes.dtype.kind not in "biuf":
        raise UnsupportedModel(
            f"the teacher's labels are {classes.dtype} ({', '.join(map(str, classes[:3]))}, "
            "...): a torch student answers numbers; relabel them as integers 0..n-1"
        )
    return classes


def _role(
    name: str, array: np.ndarray[Any, Any], logits: Any, classes: np.ndarray[Any, Any]
) -> str:
    """Which of the student's answers stands for the teacher's output `name`."""
    if array is logits or (array.shape == logits.shape and np.array_equal(array, logits)):
        return "logits"
    flat = array.reshape(len(array)) if array.ndim == 2 and array.shape[1] == 1 else array
    if flat.ndim == 1 and np.array_equal(flat, classes[logits.argmax(axis=1)]):
        return "labels"
    if array.shape == logits.shape and np.allclose(array, _softmax(logits), atol=1e-4):
        return "probabilities"
    raise UnsupportedModel(
        f"a torch student cannot answer the teacher's output {name!r} ({array.dtype}, shape "
        f"{list(array.shape)}): it is neither scores, labels nor class probabilities"
    )


def answering(student: Any, targets: Targets) -> Any:
    """The student as it will answer: itself, or wrapped to answer the teacher's outputs."""
    if targets.roles in (("logits",), ("values",)):
        return student
    torch = require("torch", extra="torch")
    classes = torch.as_tensor(np.asarray(targets.classes))
    return _answering_class()(student, targets.roles, classes).eval()


def train(
    student: Any,
    x: np.ndarray[Any, Any],
    targets: Targets,
    labels: np.ndarray[Any, Any] | None,
    recipe: Recipe,
) -> Any:
    """Train `student` in place on the teacher's `targets` (and `labels`, when given)."""
    torch = require("torch", extra="torch")
    inputs = torch.as_tensor(np.asarray(x, dtype=np.float32))
    soft = torch.as_tensor(targets.values)
    hard = None if labels is None else torch.as_tensor(_hard(labels, targets))
    check_student(student, inputs[:2], soft[:2])
    torch.manual_seed(recipe.seed)
    order = torch.Generator().manual_seed(recipe.seed)
    optimizer = torch.optim.Adam(student.parameters(), lr=recipe.lr)
    student.train()
    for _ in range(recipe.epochs):
        shuffled = torch.randperm(len(inputs), generator=order)
        for start in range(0, len(inputs), recipe.batch_size):
            rows = shuffled[start : start + recipe.batch_size]
            optimizer.zero_grad()
            batch = None if hard is None else hard[rows]
            _loss(student(inputs[rows]), soft[rows], batch, targets, recipe).backward()
            optimizer.step()
    return student.eval()


def _loss(output: Any, soft: Any, hard: Any, targets: Targets, recipe: Recipe) -> Any:
    functional = require("torch.nn.functional", extra="torch")
    if not targets.classifier:
        output = output.reshape(soft.shape)
        loss = functional.mse_loss(output, soft)
        if hard is not None:
            loss = recipe.alpha * functional.mse_loss(output, hard) + (1 - recipe.alpha) * loss
        return loss
    t = recipe.temperature
    loss = functional.kl_div(
        functional.log_softmax(output / t, dim=1), functional.log_softmax(soft / t, dim=1),
        log_target=True, reduction="batchmean",
    ) * (t * t)  # fmt: skip
    if hard is not None:
        loss = recipe.alpha * functional.cross_entropy(output, hard) + (1 - recipe.alpha) * loss
    return loss


def _hard(labels: np.ndarray[Any, Any], targets: Targets) -> np.ndarray[Any, Any]:
    """The true labels as the student learns them: class indices, or values."""
    if targets.classes is None:
        return labels.reshape(targets.values.shape).astype(np.float32)
    order = np.argsort(targets.classes)
    found = np.searchsorted(targets.classes, labels, sorter=order)
    found = np.clip(found, 0, len(order) - 1)
    if not np.array_equal(targets.classes[order[found]], labels.reshape(found.shape)):
        raise ConfigurationError(
            f"data's labels include classes the teacher does not answer "
            f"(it answers {', '.join(map(str, targets.classes))})"
        )
    return np.asarray(order[found], dtype=np.int64)


def check_student(student: Any, inputs: Any, soft: Any) -> None:
    """One batch through the student before any training: a student that does not take the
    teacher's inputs, or answers another width, is refused now with what differs."""
    torch = require("torch", extra="torch")
    try:
        with torch.no_grad():
            output = student.eval()(inputs)
    except Exception as error:  # any failure of the caller's forward: reported as it is
        raise ConfigurationError(
            f"the student cannot take the teacher's inputs (shape {list(inputs.shape[1:])} per "
            f"row): {type(error).__name__}: {error}"
        ) from None
    if not isinstance(output, torch.Tensor) or output[0].numel() != soft[0].numel():
        got = list(output.shape[1:]) if isinstance(output, torch.Tensor) else type(output)
        raise ConfigurationError(
            f"the student answers {got} per row where the teacher gives "
            f"{list(soft.shape[1:])}: its last layer must have {soft[0].numel()} outputs"
        )


def agreement(teacher: LoadedModel, student: Any, inputs: Any) -> float:
    """The fraction of `inputs` where the student's top class is the teacher's."""
    torch = require("torch", extra="torch")
    expected = teacher_targets(teacher, np.asarray(inputs), False).values.argmax(axis=1)
    with torch.inference_mode():
        scores = student(torch.as_tensor(np.asarray(inputs, dtype=np.float32)))
    return round(float(np.mean(scores.argmax(dim=1).numpy() == expected)), 4)


def _named(answer: Any) -> dict[str, np.ndarray[Any, Any]]:
    if isinstance(answer, dict):
        return {str(name): np.asarray(array) for name, array in answer.items()}
    if isinstance(answer, tuple):
        return {f"output-{i}": np.asarray(array) for i, array in enumerate(answer)}
    return {"output-0": np.asarray(answer)}


def _softmax(logits: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=1, keepdims=True))


@functools.cache
def _answering_class() -> Any:
    """`Answering`, built on first use: torch is imported only when a student is wrapped."""
    torch = require("torch", extra="torch")

    module: Any = torch.nn.Module

    class Answering(module):  # type: ignore[misc]
        """A student's scores as the teacher's outputs: `labels` (the class of the highest
        score), `probabilities` (their softmax) or the `logits` themselves, in order."""

        def __init__(self, student: Any, roles: tuple[str, ...], classes: Any) -> None:
            super().__init__()
            self.student = student
            self.roles = roles
            self.register_buffer("classes", classes)

        def forward(self, x: Any) -> Any:
            logits = self.student(x)
            answers = {
                "logits": lambda: logits,
                "labels": lambda: self.classes[logits.argmax(dim=1)],
                "probabilities": lambda: torch.softmax(logits, dim=1),
            }
            outputs = tuple(answers[role]() for role in self.roles)
            return outputs[0] if len(outputs) == 1 else outputs

    return Answering


def distilled(
    teacher: LoadedModel,
    student: Any,
    data: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None],
    recipe: Recipe,
    *,
    regression: bool,
    eval_inputs: Any,
    init: Any,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The trained student as it will answer, the step's settings, and how to save it: by its
    class when `init` rebuilds it (the torch flavor decides), else as an exported program."""
    if teacher.input_example() is None:
        raise UnsupportedModel(
            "distill needs a teacher logged with an input example: the student is saved and "
            "checked against the teacher's signature, which the example gives"
        )
    x, labels = data
    targets = teacher_targets(teacher, x, regression)
    train(student, x, targets, labels, recipe)
    settings: dict[str, Any] = {
        "student": type(student).__qualname__,
        "student_parameters": sum(p.numel() for p in student.parameters()),
        "transfer_rows": len(x), "epochs": recipe.epochs, "batch_size": recipe.batch_size,
        "lr": recipe.lr, "seed": recipe.seed,
    }  # fmt: skip
    if targets.classifier:
        settings["temperature"] = recipe.temperature
        settings["agreement"] = agreement(teacher, student, eval_inputs)
    if labels is not None:
        settings["alpha"] = recipe.alpha
    child = answering(student, targets)
    save = {"export": True} if child is not student else {"init": dict(init or {})}
    return child, settings, save
