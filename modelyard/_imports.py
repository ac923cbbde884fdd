"""Import optional dependencies lazily, turning a missing one into a `MissingDependency` error."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import shlex
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

from modelyard.errors import MissingDependency

# skops.io builds its list of trusted types at import with scikit-learn's `all_estimators()`, whose
# `pkgutil.walk_packages` imports every package under sklearn to look inside, including the
# array-API adapters `sklearn.externals.array_api_compat.torch` and `.dask`: those import torch
# and dask themselves, seconds of start-up for a process that serves a scikit-learn model. No
# estimator lives there (`all_estimators` skips `externals`), so they are refused while skops.io
# imports, unless their framework is loaded already; refused, they stay out of `sys.modules` and
# import normally later if scikit-learn's array-API support asks for them.
_WALKS_SKLEARN = ("skops",)
_ADAPTERS = {
    "sklearn.externals.array_api_compat.torch": "torch",
    "sklearn.externals.array_api_compat.dask": "dask",
}


def require(module: str, *, extra: str) -> ModuleType:
    """Import `module`, or raise `MissingDependency` naming the packages of modelyard's `extra`."""
    try:
        if module.split(".")[0] in _WALKS_SKLEARN and module not in sys.modules:
            with _without(_ADAPTERS):
                return importlib.import_module(module)
        return importlib.import_module(module)
    except ImportError as error:
        if error.name is not None and module.split(".")[0] != error.name.split(".")[0]:
            raise  # the module exists but one of its own imports is broken: show that
        raise missing(module, extra=extra) from error


def missing(module: str, *, extra: str) -> MissingDependency:
    """The error for a missing `module`, naming what installs it where that is known."""
    return MissingDependency(module, extra=extra, packages=extra_packages(extra))


def extra_packages(extra: str, *, distribution: str = "modelyard") -> list[str]:
    """The requirements an extra adds, from the installed package's metadata, without versions
    and quoted for a shell (`psycopg[binary]` -> `'psycopg[binary]'`); none when modelyard runs
    from a source tree that was never installed."""
    try:
        requirements = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    packages = []
    for requirement in requirements:
        spec, _, marker = requirement.partition(";")
        if re.search(rf"""\bextra\s*==\s*["']{re.escape(extra)}["']""", marker):
            packages.append(shlex.quote(re.split(r"[\s<>=!~;(@]", spec.strip(), maxsplit=1)[0]))
    return packages


class _Refuse:
    """A finder that refuses the given modules (a `ModuleNotFoundError`, as if absent)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = frozenset(names)

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if name in self.names:
            raise ModuleNotFoundError(f"{name} is skipped while skops.io imports", name=name)
        return None  # not ours: the next finder looks


@contextmanager
def _without(adapters: dict[str, str]) -> Iterator[None]:
    """Refuse each adapter whose framework is not imported yet, for the duration."""
    refused = [name for name, framework in adapters.items() if framework not in sys.modules]
    finder = _Refuse(refused)
    sys.meta_path.insert(0, finder)  # no lock: taken inside an import, one could deadlock
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
