"""The import rules of scripts/check_imports.py hold for the package, and the checker finds what
it is there to find: a private module or name used across packages, an import up or sideways
between layers, and a module no layer names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
CHECKER = REPOSITORY / "scripts" / "check_imports.py"


def check(*arguments: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(CHECKER), *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def package(root: Path, files: dict[str, str]) -> Path:
    """A small `modelyard` tree under `root`: every folder a package, every file as given."""
    for name, text in {"__init__.py": "", "errors.py": "", **files}.items():
        path = root / "modelyard" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(root / "modelyard").parents:
            (root / "modelyard" / folder / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    return root


def test_the_package_keeps_its_layers_and_its_private_modules() -> None:
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_architecture_page_draws_the_checked_layers() -> None:
    layers = check("--layers").stdout
    assert layers.startswith("10: entry\n")
    assert layers in (REPOSITORY / "docs" / "architecture.md").read_text()


def test_a_private_module_of_another_package_is_refused(tmp_path: Path) -> None:
    root = package(tmp_path, {
        "store/_protocol.py": "READ_SIZE = 1\n_HIDDEN = 2\n",
        "store/_local.py": "from modelyard.store._protocol import _HIDDEN\n",  # its own: fine
        "serving/_pool.py": "from modelyard.store._protocol import READ_SIZE\n",
        "serving/_codecs.py": "from modelyard.store import _protocol\n",
        "api/_blobs.py": "from modelyard.store import _HIDDEN\n",
        "cli/_app.py": "from modelyard.__about__ import __version__\n",  # a dunder: fine
        "__about__.py": "__version__ = '1'\n",
    })  # fmt: skip
    result = check(str(root))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[-1] == "3 import rule violations (see scripts/check_imports.py)"
    assert (
        "modelyard/serving/_pool.py:1: modelyard.serving._pool imports "
        "modelyard.store._protocol, a private module of modelyard.store" in result.stdout
    )
    assert "modelyard/serving/_codecs.py:1:" in result.stdout
    assert "imports the private _HIDDEN from modelyard.store" in result.stdout


def test_an_import_up_or_sideways_is_refused(tmp_path: Path) -> None:
    root = package(tmp_path, {
        "_yard.py": "from modelyard.api import serve\nfrom modelyard.store import Store\n",
        "api/__init__.py": "serve = None\n",
        "store/__init__.py": "from typing import TYPE_CHECKING\n"
                             "if TYPE_CHECKING:\n    from modelyard.registry import Registry\n",
        "registry/__init__.py": "def f():\n    from modelyard.flavors import load_model\n",
        "serving/_pool.py": "from .._yard import Yard\nfrom . import _codecs\n",
        "serving/_codecs.py": "",
    })  # fmt: skip
    result = check(str(root))
    assert result.returncode == 1, result.stdout
    assert "modelyard.store (store) imports modelyard.registry (registry), which is above" in (
        result.stdout
    )  # under TYPE_CHECKING too
    assert (
        "modelyard.registry (registry) imports modelyard.flavors (flavors), which is in "
        "the same layer (siblings are independent)" in result.stdout
    )  # inside a function too
    assert "modelyard.serving._pool (serving) imports modelyard._yard (facade)" in result.stdout
    assert "modelyard._yard (facade) imports modelyard.api" not in result.stdout  # the exception
    assert result.stdout.count("\n") == 4


def test_a_module_in_no_layer_is_named(tmp_path: Path) -> None:
    root = package(tmp_path, {"nowhere/__init__.py": "from modelyard.errors import Nope\n"})
    result = check(str(root))
    assert result.returncode == 1
    assert "modelyard.nowhere is in no layer: add it to LAYERS or MODULES" in result.stdout
