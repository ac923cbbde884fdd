"""The explainer interface, the catalog of explainers by name, and the choice of one for a model.

An explainer is a small class registered with `@explainer`: it is built once for a loaded model
(the slow part: reading trees, evaluating the background) and then explains any rows. Which one
a model gets follows its flavor and its type: tree SHAP for scikit-learn trees, XGBoost and
LightGBM; linear SHAP for linear models; deep SHAP (DeepLIFT) for torch modules rebuilt from their
class, gradient SHAP for exported torch programs; kernel SHAP for everything else. LIME is there
to be named.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, TypeVar

from modelyard.errors import (
    ConfigurationError,
    InferenceError,
    InvalidInput,
    ModelyardError,
    UnsupportedModel,
)
from modelyard.explain._explanation import Explanation
from modelyard.explain._features import BACKGROUND_ROWS, Features, Matrix, sample_rows
from modelyard.explain._target import Target

#: How long an explanation may take and still be `quick`: about a prediction's time.
QUICK_SECONDS = 0.005
_EXPLAINERS: dict[str, type[Explainer]] = {}
# What each flavor tries, in order, when no explainer is named: the first that accepts the model.
_CANDIDATES = {
    "sklearn": ("tree", "linear", "kernel"),
    "xgboost": ("tree", "kernel"),
    "lightgbm": ("tree", "kernel"),
    "torch": ("deep", "gradient", "kernel"),
}


class Explainer(ABC):
    """Explains one model's outputs feature by feature.

    Subclasses set `name` and implement `explain_rows`; their constructor raises
    `UnsupportedModel` for a model they cannot explain, and `background()` gives them the
    background sample (real rows of the version's reference data). `serial = True` makes calls
    take turns, for explainers that keep state while they work.
    """

    name: ClassVar[str]
    serial: ClassVar[bool] = False

    def __init__(self, target: Target, background: Matrix | None) -> None:
        self.target = target
        self._background = background
        self._turns: AbstractContextManager[Any] = (
            threading.Lock() if self.serial else nullcontext()
        )
        #: CPU seconds a row took in the last call (infinite before the first): `quick` reads it.
        self.row_seconds = math.inf

    def quick(self, rows: int, *, within: float = QUICK_SECONDS) -> bool:
        """Whether explaining `rows` rows should take at most `within` seconds, judging by the
        last call. A server runs such a call on its event loop: handing it to a thread costs
        about as much as tree SHAP on one row. Never for explainers that take turns."""
        return not self.serial and rows * self.row_seconds <= within

    def background(self, rows: int = BACKGROUND_ROWS) -> Matrix:
        """At most `rows` background rows; `ConfigurationError` when the version has none."""
        if self._background is None:
            raise ConfigurationError(
                f"the {self.name} explainer needs background rows and {self.target.name} has "
                "none: log it with reference_data= (a sample of its training data), or pass "
                "background="
            )
        return sample_rows(self._background, rows)

    def features(self) -> Features:
        """The model's features (known whenever there is a background sample)."""
        if self.target.features is None:  # pragma: no cover - set with every background
            raise ConfigurationError(f"{self.target.name} has no signature to explain")
        return self.target.features

    def explain(self, data: Any) -> Explanation:
        """Explain every row of `data`, given as the model takes it (an array, a DataFrame or
        a dict of arrays, checked against the signature as inference checks it)."""
        features = self.target.features_for(data)
        rows = features.rows_of(data)
        if len(rows) == 0:
            raise InvalidInput("there are no rows to explain")
        try:
            with self._turns:
                began = time.thread_time()  # CPU time: a busy machine does not inflate it
                explanation = self.explain_rows(rows, features)
                self.row_seconds = (time.thread_time() - began) / len(rows)
                return explanation
        except ModelyardError:
            raise
        except Exception as error:  # shap and lime fail in many ways, each with its own type
            raise InferenceError(
                self.target.name, f"the {self.name} explainer failed: {type(error).__name__}: "
                f"{error}"
            ) from error  # fmt: skip

    @abstractmethod
    def explain_rows(self, rows: Matrix, features: Features) -> Explanation:
        """Explain rows of the feature matrix."""


E = TypeVar("E", bound=type[Explainer])


def explainer(cls: E) -> E:
    """Class decorator: register an explainer under its `name`."""
    _EXPLAINERS[cls.name] = cls
    return cls


def explainers() -> list[str]:
    """The names of every registered explainer."""
    return sorted(_EXPLAINERS)


def candidates(flavor: str) -> tuple[str, ...]:
    """The explainers tried, in order, for a model of `flavor` when none is named."""
    return _CANDIDATES.get(flavor, ("kernel",))


def build_explainer(
    target: Target, *, name: str | None = None, background: Matrix | None = None
) -> Explainer:
    """The explainer `name` for `target`, or the first of its flavor's candidates that accepts
    it. `UnsupportedModel` when the named one (or every candidate) cannot explain the model."""
    if name is not None:
        if name not in _EXPLAINERS:
            raise ConfigurationError(
                f"unknown explainer {name!r}; use one of {', '.join(explainers())}"
            )
        return _build(name, target, background)
    refusals = []
    for candidate in candidates(target.flavor):
        try:
            return _build(candidate, target, background)
        except UnsupportedModel as refusal:
            refusals.append(refusal.message)
    raise UnsupportedModel(f"no explainer fits {target.name}: {'; '.join(refusals)}")


def _build(name: str, target: Target, background: Matrix | None) -> Explainer:
    try:
        return _EXPLAINERS[name](target, background)
    except ModelyardError:
        raise
    except Exception as error:  # the model, shap or lime failed on the background rows
        raise InferenceError(
            target.name, f"could not build the {name} explainer: {type(error).__name__}: {error}"
        ) from error
