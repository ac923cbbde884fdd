"""Import optional dependencies lazily, turning a missing one into a `MissingDependency` error."""

from __future__ import annotations

import importlib
from types import ModuleType

from modelyard.errors import MissingDependency


def require(module: str, *, extra: str) -> ModuleType:
    """Import `module`, or raise an error that names `pip install "modelyard[extra]"`."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if error.name is not None and module.split(".")[0] != error.name.split(".")[0]:
            raise  # the module exists but one of its own imports is broken: show that
        raise MissingDependency(module, extra=extra) from error
