"""The flavors modelyard knows, by name, and the choice of one for a Python object."""

from __future__ import annotations

import importlib
from typing import TypeVar

from modelyard.errors import UnsupportedModel
from modelyard.flavors._protocol import Flavor

# The built-in flavors, by name: the module that registers each, and the extra that installs its
# framework. A flavor's module is imported when that flavor is first asked for, so serving a
# scikit-learn model never imports the torch or ONNX flavor (nor, through them, numpy helpers
# and pickle guards it does not need). tests/test_import_weight.py checks the table.
FLAVOR_MODULES: dict[str, tuple[str, str | None]] = {
    "lightgbm": ("modelyard.flavors._lightgbm", "lightgbm"),
    "onnx": ("modelyard.flavors._onnx", "onnx"),
    "pyfunc": ("modelyard.flavors._pyfunc", None),
    "sklearn": ("modelyard.flavors._sklearn", "sklearn"),
    "torch": ("modelyard.flavors._torch", "torch"),
    "transformers": ("modelyard.flavors._transformers", "transformers"),
    "xgboost": ("modelyard.flavors._xgboost", "xgboost"),
}

_FLAVORS: dict[str, Flavor] = {}

F = TypeVar("F", bound=type[Flavor])


def flavor(cls: F) -> F:
    """Class decorator: register a flavor under its `name`."""
    _FLAVORS[cls.name] = cls()
    return cls


def get_flavor(name: str) -> Flavor:
    """The flavor registered as `name`."""
    if name not in _FLAVORS and name in FLAVOR_MODULES:
        importlib.import_module(FLAVOR_MODULES[name][0])  # it registers itself
    try:
        return _FLAVORS[name]
    except KeyError:
        raise UnsupportedModel(
            f"unknown flavor {name!r}; known flavors: {', '.join(flavors())}"
        ) from None


def flavor_for(model: object) -> Flavor:
    """The flavor that can save `model` (flavors match exactly, so order does not matter)."""
    for module, _ in FLAVOR_MODULES.values():
        importlib.import_module(module)
    for candidate in _FLAVORS.values():
        if candidate.matches(model):
            return candidate
    raise UnsupportedModel(
        f"no flavor can save a {type(model).__module__}.{type(model).__qualname__}; "
        f"known flavors: {', '.join(flavors())} (wrap anything else in a PythonModel "
        "for the pyfunc flavor)"
    )


def flavors() -> list[str]:
    """The names of every flavor: the built-in ones and any registered since."""
    return sorted({*FLAVOR_MODULES, *_FLAVORS})
