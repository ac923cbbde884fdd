"""The flavors modelyard knows, by name, and the choice of one for a Python object."""

from __future__ import annotations

from typing import TypeVar

from modelyard.errors import UnsupportedModel
from modelyard.flavors._protocol import Flavor

_FLAVORS: dict[str, Flavor] = {}

F = TypeVar("F", bound=type[Flavor])


def flavor(cls: F) -> F:
    """Class decorator: register a flavor under its `name`."""
    _FLAVORS[cls.name] = cls()
    return cls


def get_flavor(name: str) -> Flavor:
    """The flavor registered as `name`."""
    try:
        return _FLAVORS[name]
    except KeyError:
        raise UnsupportedModel(
            f"unknown flavor {name!r}; known flavors: {', '.join(sorted(_FLAVORS))}"
        ) from None


def flavor_for(model: object) -> Flavor:
    """The flavor that can save `model` (flavors match exactly, so order does not matter)."""
    for candidate in _FLAVORS.values():
        if candidate.matches(model):
            return candidate
    raise UnsupportedModel(
        f"no flavor can save a {type(model).__module__}.{type(model).__qualname__}; "
        f"known flavors: {', '.join(sorted(_FLAVORS))} (wrap anything else in a PythonModel "
        "for the pyfunc flavor)"
    )


def flavors() -> list[str]:
    """The names of every registered flavor."""
    return sorted(_FLAVORS)
