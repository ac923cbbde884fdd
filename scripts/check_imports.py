"""Check modelyard's layering and that private modules stay private (STYLE 23, 24).

    python scripts/check_imports.py            # the repository's modelyard/
    python scripts/check_imports.py ROOT       # the modelyard/ under ROOT
    python scripts/check_imports.py --layers   # print the layers, top first

Every `import` in the package counts: at module level, inside functions and under
`if TYPE_CHECKING:` (a type-only import still ties the two packages together). Two rules:

1. Private means private. A module may import another package's `_module`, or a `_name` from
   another package, only from inside that package; what others need is exported from the
   package's `__init__` (or a public module of it) under a name without an underscore. The
   top-level `modelyard._*` modules are the root package's own, shared by everything below it
   (the layers decide who may use them). Dunders (`__version__`) are not private.
2. Layers. A component may import itself and the components of lower layers only; the
   components of one layer are independent of each other. docs/architecture.md draws the map.

Exits 1 with one line per violation, 0 when there is none. Standard library only.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "modelyard"

# Top first. A layer is a list of independent components.
LAYERS: list[list[str]] = [
    ["entry"],  # `modelyard` (the SDK face: Yard, Settings, errors) and `python -m modelyard`
    ["cli"],
    ["api"],  # the registry server and the inference server
    ["ui"],  # the web UI's pages, mounted by the registry server
    ["facade"],  # the Yard client and its parts: embedded or over HTTP
    ["deploy", "ingest", "optimize", "scoring", "serving"],
    ["diff", "explain", "monitoring"],
    ["flavors", "registry"],
    ["security", "store"],
    ["base"],
]

# Top-level modules, by component; subpackages are their own component.
MODULES = {
    "modelyard": "entry",
    "modelyard.__main__": "entry",
    "modelyard._active_run": "facade",
    "modelyard._model_card": "facade",
    "modelyard._model_folders": "facade",
    "modelyard._remote": "facade",
    "modelyard._remote_admin": "facade",
    "modelyard._remote_monitoring": "facade",
    "modelyard._remote_events": "facade",
    "modelyard._remote_store": "facade",
    "modelyard._yard": "facade",
    "modelyard._yard_build": "facade",
    "modelyard._yard_events": "facade",
    "modelyard._yard_oci": "facade",
    "modelyard._yard_registry": "facade",
    "modelyard._yard_score": "facade",
    "modelyard._yard_signing": "facade",
    "modelyard._yard_watch": "facade",
    "modelyard.__about__": "base",
    "modelyard._html": "base",
    "modelyard._dask": "base",
    "modelyard._imports": "base",
    "modelyard._progress": "base",
    "modelyard._scratch": "base",
    "modelyard._tls": "base",
    "modelyard.errors": "base",
    "modelyard.settings": "base",
}

# Imports that break a rule on purpose: (importer, imported module, why). Keep it short.
EXCEPTIONS: list[tuple[str, str, str]] = [
    (
        "modelyard._yard",
        "modelyard.api",
        "Yard.serve() is the SDK's door to the inference server (modelyard.api.serve); it "
        "imports it inside the method, so the facade loads no server code until asked, and "
        "the serving parts take the Yard only through ModelSource and AlertSource",
    ),
]

_RANK = {component: len(LAYERS) - i for i, layer in enumerate(LAYERS) for component in layer}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def main(argv: list[str]) -> int:
    if argv[1:] == ["--layers"]:
        for rank, layer in enumerate(LAYERS):
            print(f"{len(LAYERS) - rank}: {' | '.join(layer)}")
        return 0
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent
    violations = check(root)
    for violation in violations:
        print(violation)
    if violations:
        print(f"{len(violations)} import rule violations (see scripts/check_imports.py)")
        return 1
    return 0


def check(root: Path) -> list[Violation]:
    """Every violation of the two rules in the package under `root`."""
    subpackages = {path.parent.name for path in (root / PACKAGE).glob("*/__init__.py")}
    found = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        importer = module_name(path.relative_to(root))
        for line, target, names in imports(path, importer, root):
            where = Import(path.relative_to(root), line, importer, target, names)
            found += _violations(where, subpackages)
    return found


def module_name(relative: Path) -> str:
    parts = list(relative.with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, importer: str, root: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line, imported module, names taken from it) for each import of the package; a name
    that is itself a submodule is given as the module it is."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _ours(alias.name):
                    yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, importer, is_package)
            if not _ours(base):
                continue
            names = []
            for alias in node.names:
                if _is_module(root, f"{base}.{alias.name}"):
                    yield node.lineno, f"{base}.{alias.name}", []
                else:
                    names.append(alias.name)
            if names:
                yield node.lineno, base, names


def component(module: str) -> str | None:
    """The component a module belongs to, or None when no layer names it."""
    parts = module.split(".")
    top = ".".join(parts[:2])
    if top in MODULES:
        return MODULES[top]
    name = parts[1] if len(parts) > 1 else ""
    return name if name in _RANK and name not in MODULES.values() else None


def package_of(module: str, subpackages: set[str]) -> str:
    """`modelyard.<subpackage>` for a module inside one, else `modelyard` (the root)."""
    parts = module.split(".")
    return f"{PACKAGE}.{parts[1]}" if len(parts) > 1 and parts[1] in subpackages else PACKAGE


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    importer: str
    target: str
    names: list[str]


def _violations(found: Import, subpackages: set[str]) -> list[Violation]:
    problems = []
    mine, theirs = package_of(found.importer, subpackages), package_of(found.target, subpackages)
    if mine != theirs:
        if theirs != PACKAGE and any(_private(part) for part in found.target.split(".")[2:]):
            problems.append(f"{found.importer} imports {found.target}, a private module of "
                            f"{theirs}: import what {theirs} exports instead")  # fmt: skip
        private = [name for name in found.names if _private(name)]
        if private:
            problems.append(f"{found.importer} imports the private {', '.join(private)} from "
                            f"{found.target}: give {theirs} a public name for it")  # fmt: skip
    problems += _layer_violations(found.importer, found.target)
    return [Violation(found.path, found.line, problem) for problem in problems]


def _layer_violations(importer: str, target: str) -> list[str]:
    here, there = component(importer), component(target)
    if here is None or there is None:
        unknown = importer if here is None else target
        return [
            f"{unknown} is in no layer: add it to LAYERS or MODULES in scripts/check_imports.py"
        ]
    if here == there or _RANK[there] < _RANK[here] or _excepted(importer, target):
        return []
    where = (
        "in the same layer (siblings are independent)" if _RANK[there] == _RANK[here] else "above"
    )
    return [f"{importer} ({here}) imports {target} ({there}), which is {where}"]


def _excepted(importer: str, target: str) -> bool:
    return any(
        (importer == who or importer.startswith(f"{who}."))
        and (target == what or target.startswith(f"{what}."))
        for who, what, _ in EXCEPTIONS
    )


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = importer.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[: len(anchor) - node.level + 1]
    return ".".join([*anchor, *([node.module] if node.module else [])])


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(f"{PACKAGE}.")


def _is_module(root: Path, module: str) -> bool:
    relative = Path(*module.split("."))
    return (root / relative).with_suffix(".py").is_file() or (root / relative).is_dir()


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
