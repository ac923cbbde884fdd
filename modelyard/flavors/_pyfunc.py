"""`pyfunc`: any Python class with `load_context` and `predict`, its code stored with the version.

Nothing is pickled: the class is rebuilt from its stored source file, constructed with JSON
`init` arguments, and handed its artifacts (files stored beside it) in `load_context`. Importing
stored code runs it, so loading needs `trust=True`, as a pickle does.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import shutil
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from modelyard.errors import ConfigurationError, UnsupportedModel, UntrustedModel
from modelyard.flavors._catalog import flavor
from modelyard.flavors._paths import inside
from modelyard.flavors._protocol import Flavor, type_names
from modelyard.security import TrustPolicy

CODE_FOLDER = "code"
ARTIFACTS_FOLDER = "artifacts"


@dataclass(frozen=True)
class ModelContext:
    """What `PythonModel.load_context` gets: the model's folder and its artifacts by name."""

    folder: Path
    artifacts: dict[str, Path] = field(default_factory=dict)


class PythonModel:
    """Subclass this for a model no other flavor fits; define it in a module, not `__main__`.

    >>> class Doubler(PythonModel):
    ...     def load_context(self, context):
    ...         self.scale = float(context.artifacts["scale"].read_text())
    ...     def predict(self, inputs): return inputs * self.scale
    >>> yard.log_model(Doubler(), name="doubler", artifacts={"scale": "scale.txt"})
    """

    def load_context(self, context: ModelContext) -> None:
        """Prepare for `predict` (read artifacts, build lookup tables); nothing by default."""

    def predict(self, inputs: Any) -> Any:
        """Answer a batch of inputs."""
        raise NotImplementedError


@flavor
class PyfuncFlavor(Flavor):
    """A `PythonModel` subclass, its source and its artifacts."""

    name = "pyfunc"

    def matches(self, model: object) -> bool:
        return f"{__name__}.PythonModel" in type_names(model)

    def save(
        self,
        model: Any,
        path: Path,
        *,
        example: Any = None,
        artifacts: Mapping[str, str | Path] | None = None,
        code_paths: Sequence[str | Path] = (),
        init: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        cls = type(model)
        if cls.__module__ == "__main__":
            raise UnsupportedModel(
                f"{cls.__qualname__} is defined in __main__; define your PythonModel in a module "
                "(a .py file) so its code can be stored and imported back"
            )
        _copy_module(cls.__module__, path / CODE_FOLDER)
        for extra in code_paths:
            _copy(Path(extra), path / CODE_FOLDER / Path(extra).name)
        stored = {}
        for key, source in (artifacts or {}).items():
            _copy(Path(source), path / ARTIFACTS_FOLDER / key)
            stored[key] = f"{ARTIFACTS_FOLDER}/{key}"
        # Prepare the instance the caller passed as load_model will, so save-time predictions
        # (for the signature) see the same state.
        model.load_context(ModelContext(path, {k: path / v for k, v in stored.items()}))
        return {
            "class": f"{cls.__module__}:{cls.__qualname__}",
            "code": CODE_FOLDER,
            "artifacts": stored,
            "init": dict(init or {}),
        }

    def load(self, path: Path, settings: Mapping[str, Any], *, trust: TrustPolicy) -> Any:
        code = inside(path, settings["code"], setting="code")
        if not trust.pickles:
            raise UntrustedModel(str(code), kind="stored Python code")
        artifacts = {
            key: inside(path, value, setting=f"artifacts.{key}")
            for key, value in settings.get("artifacts", {}).items()
        }
        module_name, _, qualname = settings["class"].partition(":")
        cls = _import(code, module_name, qualname)
        model = cls(**settings.get("init", {}))
        model.load_context(ModelContext(path, artifacts))
        return model

    def predict(self, model: Any, inputs: Any, settings: Mapping[str, Any]) -> Any:
        return model.predict(inputs)

    def describe(self, model: Any) -> dict[str, Any]:
        return {"class": f"{type(model).__module__}.{type(model).__qualname__}"}


def _copy_module(module_name: str, code: Path) -> None:
    """Copy a module's source file, and its packages' `__init__.py`, under `code/` by its name."""
    parts = module_name.split(".")
    for depth in range(1, len(parts) + 1):
        module = sys.modules[".".join(parts[:depth])]
        source = inspect.getsourcefile(module)
        if source is None:
            raise UnsupportedModel(f"module {module.__name__} has no Python source to store")
        is_package = Path(source).name == "__init__.py"
        target = code.joinpath(*parts[:depth], "__init__.py") if is_package else (
            code.joinpath(*parts[: depth - 1], f"{parts[depth - 1]}.py")
        )  # fmt: skip
        _copy(Path(source), target)


def _copy(source: Path, target: Path) -> None:
    if not source.exists():
        raise ConfigurationError(f"cannot store {source}: it does not exist")
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copy2(source, target)


_IMPORTING = threading.Lock()
"""Held while stored code is imported: the server loads versions in threads at once, and a
second thread must not take a module another is still executing (it has no classes yet)."""


def _import(code: Path, module_name: str, qualname: str) -> type[Any]:
    with _IMPORTING:
        module = _module(code, module_name)
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise UnsupportedModel(f"{module_name} has no class {qualname} in the stored code")
    return target  # type: ignore[no-any-return]


def _module(code: Path, module_name: str) -> ModuleType:
    parts = module_name.split(".")
    if not all(part.isidentifier() for part in parts):
        raise UnsupportedModel(f"{module_name!r} is not a module name")
    file = code.joinpath(*parts).with_suffix(".py")
    if not file.is_file():
        file = code.joinpath(*parts, "__init__.py")
    if not file.is_file():  # only the stored code is imported, never an installed module
        raise UnsupportedModel(f"{module_name} is not in the stored code {code}")
    loaded = sys.modules.get(module_name)
    source = getattr(loaded, "__file__", None)
    if loaded is not None and source and Path(source).read_bytes() == file.read_bytes():
        return loaded  # the same code is imported already
    sys.path.insert(0, str(code))  # for the stored module's own imports of its siblings
    # No __pycache__ in the model's folder: it is a verified cache, restored when it changes.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        if loaded is None:
            return importlib.import_module(module_name)
        # Another version of the module is imported: load this one beside it, under its own name
        digest = hashlib.sha256(file.read_bytes()).hexdigest()[:16]
        unique = f"modelyard_pyfunc_{digest}_{module_name.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(unique, file)
        if spec is None or spec.loader is None:
            raise UnsupportedModel(f"cannot import the stored code {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.dont_write_bytecode = writes_bytecode
        sys.path.remove(str(code))
