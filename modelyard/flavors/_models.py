"""Model folders: `save_model` writes a framework object with its `modelyard.json`;
`load_model` reads one back as a `LoadedModel` that predicts."""

from __future__ import annotations

import inspect
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from modelyard import _html
from modelyard.errors import ConfigurationError, UnsafeModel, UnsupportedModel
from modelyard.flavors._catalog import flavor_for, get_flavor
from modelyard.flavors._environment import capture_environment, check_environment
from modelyard.flavors._examples import load_example, save_example
from modelyard.flavors._pickles import scan
from modelyard.flavors._protocol import Flavor
from modelyard.flavors._signatures import ContentType, Signature, infer_signature
from modelyard.security import TrustPolicy

MODEL_FILE = "modelyard.json"
_PROBABILISTIC = ("sklearn", "xgboost", "lightgbm")  # flavors whose `method` may be predict_proba


class ModelInfo(BaseModel):
    """What `modelyard.json` records about a saved model."""

    model_config = ConfigDict(frozen=True)

    flavor: str
    settings: dict[str, Any] = Field(default_factory=dict)
    signature: Signature | None = None
    example: ContentType | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    summary: dict[str, Any] = Field(default_factory=dict)


class LoadedModel:
    """A model read back from a version: `predict` it, or use `native`, the framework object."""

    def __init__(self, flavor: Flavor, native: Any, info: ModelInfo, folder: Path) -> None:
        self.flavor = flavor
        self.native = native
        self.info = info
        self.folder = folder
        self.ref: str | None = None
        """The version this model was loaded from (`Yard.load_model` sets it), else None."""

    @property
    def signature(self) -> Signature | None:
        """Inputs and outputs, as inferred from the example at save time."""
        return self.info.signature

    def input_example(self) -> Any:
        """The example stored with the model, or None."""
        if self.info.example is None:
            return None
        return load_example(self.folder, self.info.example)

    def predict(self, inputs: Any) -> Any:
        """Predict with the framework object (arrays, a DataFrame or a dict of arrays).

        With a signature, the inputs are checked and put in the model's form first, as the
        server does (`Signature.prepare`): columns or keys in another order are reordered by
        name, a lossless cast is made (FP32 to FP64), and `InvalidInput` names a missing,
        unknown, mistyped or misshapen input instead of the framework's own error.

        >>> model.predict(frame[["petal_width", "sepal_length"]])  # any column order
        """
        return self.flavor.predict(self.native, self._prepared(inputs), self.info.settings)

    def predict_proba(self, inputs: Any) -> Any:
        """Class probabilities, one column per class, for a classifier that gives them
        (scikit-learn, XGBoost and LightGBM), with the inputs checked as `predict` does;
        `UnsupportedModel` for any other model."""
        if not self._has_probabilities():
            raise UnsupportedModel(
                f"{self.ref or type(self.native).__qualname__} ({self.flavor.name}) gives no "
                "class probabilities: predict_proba is for scikit-learn, XGBoost and LightGBM "
                "classifiers"
            )
        settings = {**self.info.settings, "method": "predict_proba"}
        return self.flavor.predict(self.native, self._prepared(inputs), settings)

    def call(self, model_input: Any) -> Any:
        """Call the framework object on inputs already in its form, unchecked: what the server
        does after its own check (`Signature.conform`, then `Signature.model_input`)."""
        return self.flavor.predict(self.native, model_input, self.info.settings)

    def _prepared(self, inputs: Any) -> Any:
        if self.signature is None or self.flavor.reads_any_form:
            return inputs
        return self.signature.prepare(inputs, model=self.ref or "the model")

    def _has_probabilities(self) -> bool:
        if self.flavor.name not in _PROBABILISTIC:
            return False
        if self.flavor.name == "lightgbm" and "classes" in self.info.settings:
            return True  # a classifier's Booster: the flavor turns its scores into probabilities
        return callable(getattr(self.native, "predict_proba", None))

    def __repr__(self) -> str:
        return f"<LoadedModel {self.flavor.name} {type(self.native).__qualname__}>"

    def _repr_html_(self) -> str:
        facts = [
            ("flavor", self.flavor.name),
            ("object", type(self.native).__qualname__),
            ("folder", self.folder),
        ]
        spec = self.signature.model_dump() if self.signature else None
        return _html.card(
            self.ref or self.folder.name,
            _html.table(None, facts),
            _html.section("signature", _html.signature(spec)),
            note="loaded model",
        )


def save_model(
    model: Any,
    path: str | Path,
    *,
    flavor: str | None = None,
    input_example: Any = None,
    **options: Any,
) -> ModelInfo:
    """Save a framework object into the folder `path` (created; must be absent or empty).

    >>> info = save_model(classifier, "out/", input_example=X[:5])
    >>> info.flavor, info.signature.inputs[0].datatype
    ('sklearn', 'FP64')
    """
    chosen = get_flavor(flavor) if flavor else flavor_for(model)
    _check_options(chosen, options)
    model, input_example = chosen.prepare(model, input_example, **options)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise UnsupportedModel(f"cannot save a model into {folder}: the folder is not empty")
    settings = chosen.save(model, folder, example=input_example, **options)
    signature = example = None
    if input_example is not None:
        output = chosen.predict(model, input_example, settings)
        signature = infer_signature(input_example, output)
        example = save_example(input_example, folder)
    info = ModelInfo(
        flavor=chosen.name,
        settings=settings,
        signature=signature,
        example=example,
        environment=capture_environment(chosen.packages),
        summary=chosen.describe(model),
    )
    _write_info(folder, info)
    return info


def _check_options(chosen: Flavor, options: Mapping[str, Any]) -> None:
    taken = [
        name
        for name, parameter in inspect.signature(chosen.save).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and name != "example"
    ]
    unknown = sorted(set(options) - set(taken))
    if unknown:
        raise ConfigurationError(
            f"unknown {chosen.name} options: {', '.join(unknown)}; it takes "
            f"{', '.join(taken) or 'none'}"
        )


def adopt_pickle(
    file: str | Path, path: str | Path, *, flavor: str, trust: TrustPolicy | None = None
) -> ModelInfo:
    """Make a model folder of a pickle-based file as it is (a `.pkl`, `.joblib` or `torch.save`
    file from elsewhere), scanning it first: one that imports anything outside the allow-list
    (widened by `trust.modules`) is refused now, not when someone loads it. Loading it later
    still needs `trust=True`."""
    chosen = get_flavor(flavor)
    source = Path(file)
    settings = chosen.pickle_settings(source.name)
    found = scan(source, trust=trust)
    if found:
        raise UnsafeModel(str(source), imports=found)
    folder = Path(path)
    folder.mkdir(parents=True)
    shutil.copy2(source, folder / source.name)
    info = ModelInfo(
        flavor=chosen.name, settings=settings, environment=capture_environment(chosen.packages)
    )
    _write_info(folder, info)
    return info


def _write_info(folder: Path, info: ModelInfo) -> None:
    (folder / MODEL_FILE).write_text(json.dumps(info.model_dump(mode="json"), indent=2) + "\n")


def read_info(path: str | Path) -> ModelInfo:
    """The `modelyard.json` of a saved model folder."""
    file = Path(path) / MODEL_FILE
    if not file.is_file():
        raise UnsupportedModel(
            f"{path} holds no {MODEL_FILE}: it was not saved by a flavor (log framework "
            "objects, or pass flavor= when logging a folder)"
        )
    try:
        return ModelInfo.model_validate_json(file.read_bytes())
    except ValidationError as error:
        raise UnsupportedModel(f"{file} is not a valid model description: {error}") from None


def load_model(path: str | Path, *, trust: bool | TrustPolicy = False) -> LoadedModel:
    """Load a saved model folder as far as the operator's `trust` allows: `trust=True` (or a
    `TrustPolicy` with `pickles`) allows pickle-based files and stored code, after a check
    against an allow-list; a policy's `types` and `modules` widen what skops files and torch
    `class` settings may name. Nothing in the folder itself widens it.

    Warns (`EnvironmentMismatch`) when a package's major version differs from the one it was
    saved with.
    """
    folder = Path(path)
    info = read_info(folder)
    chosen = get_flavor(info.flavor)
    check_environment(info.environment, what=f"this {info.flavor} model")
    native = chosen.load(folder, info.settings, trust=TrustPolicy.of(trust))
    return LoadedModel(chosen, native, info, folder)
