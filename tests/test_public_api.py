"""Every package re-exports its public names in a sorted, complete `__all__` (STYLE 4)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import modelyard

PACKAGES = ["modelyard"] + [
    info.name
    for info in pkgutil.walk_packages(modelyard.__path__, "modelyard.")
    if info.ispkg and not info.name.rsplit(".", 1)[-1].startswith("_")
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported), f"{name}.__all__ is not sorted"
    for attribute in exported:
        assert getattr(module, attribute) is not None


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attribute
        for attribute, value in vars(module).items()
        if not attribute.startswith("_")
        and getattr(value, "__module__", "").startswith("modelyard")
        and not isinstance(value, type(module))
    }
    assert public <= set(module.__all__), f"{name} exports {public - set(module.__all__)}"


def test_unknown_attribute_of_store() -> None:
    import modelyard.store

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        modelyard.store.Nope  # noqa: B018


def test_unknown_attribute_of_the_package() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        modelyard.Nope  # noqa: B018
