"""The flavor interface: how one framework's models are saved, loaded and called.

A flavor is a small class registered with `@flavor` (see `_catalog.py`). `save` writes the model's
files into a folder and returns the settings `load` needs back; the folder also gets a
`modelyard.json` (flavor, settings, signature, environment), written by `save_model`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from modelyard.errors import ConfigurationError, UnsupportedModel
from modelyard.security import TrustPolicy


class Flavor:
    """Save, load and call one framework's models.

    Subclasses set `name` (stored with every version), `extra` (the `pip install` extra that
    brings the framework) and `packages` (distributions whose versions are recorded at save and
    compared at load), and implement `matches`, `save`, `load` and `predict`. `describe` is
    optional: a JSON summary (number of trees, depth, hyper-parameters) that `diff` compares.
    """

    name: ClassVar[str]
    extra: ClassVar[str] = ""
    packages: ClassVar[tuple[str, ...]] = ()
    reads_any_form: ClassVar[bool] = False
    """True for a flavor that finds its inputs in whatever form a caller gives them (texts: a
    string, a list, a DataFrame's column of any name): `LoadedModel.predict` then passes them on
    as they are instead of conforming them to the signature (the server still does)."""

    def matches(self, model: object) -> bool:
        """Whether this flavor can save `model`; must not import the framework to find out."""
        raise NotImplementedError

    def prepare(self, model: Any, example: Any, **options: Any) -> tuple[Any, Any]:
        """The object to save and call, and the input example to store, before `save`: a
        flavor may join the model with what calling it needs (a tokenizer) and reshape the
        example into the inputs it names. Both as given by default."""
        return model, example

    def save(
        self, model: Any, path: Path, *, example: Any = None, **options: Any
    ) -> dict[str, Any]:
        """Write `model`'s files into the folder `path`; return the settings `load` needs."""
        raise NotImplementedError

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        """Read the framework object back from the folder `path`, as far as the operator's
        `trust` allows; every path taken from `settings` goes through `inside`."""
        raise NotImplementedError

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        """Call the framework object on `inputs` (arrays, a DataFrame or a dict of arrays);
        `settings` are what `save` returned."""
        raise NotImplementedError

    def pickle_settings(self, file: str) -> dict[str, Any]:
        """The settings that make `load` read `file`, a pickle-based file logged as it is."""
        raise UnsupportedModel(f"the {self.name} flavor does not load pickle-based files")

    def describe(self, model: Any) -> dict[str, Any]:
        """A JSON summary of the model's structure, compared by `diff`; empty by default."""
        return {}


def type_names(model: object) -> set[str]:
    """`module.qualname` of the model's class and every base, to match without importing."""
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(model).__mro__}


def top_modules(model: object) -> set[str]:
    """The top-level package of the model's class and of every base (`sklearn`, `torch`)."""
    return {cls.__module__.split(".")[0] for cls in type(model).__mro__}


def check_method(model: Any, method: str, choices: Sequence[str]) -> None:
    """Refuse a `method=` option that is not one of `choices` the model has."""
    usable = [name for name in choices if callable(getattr(model, name, None))]
    if method not in usable:
        raise ConfigurationError(
            f"{type(model).__module__}.{type(model).__qualname__} cannot predict with "
            f"{method!r}; use one of {', '.join(usable)}"
        )
