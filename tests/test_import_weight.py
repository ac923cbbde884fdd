"""What a fresh process imports: the package, the CLI's help and a listing stay light, and a
framework is imported only by the flavor that needs it (bench/startup.py measures the times)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ["torch", "sklearn", "skops", "onnxruntime", "xgboost", "lightgbm", "shap", "optuna",
              "scipy", "pandas", "dask", "transformers", "tokenizers"]  # fmt: skip
# What `import modelyard` and `modelyard --help` never need.
LIGHT = [*FRAMEWORKS, "numpy", "sqlalchemy", "alembic", "httpx", "fastapi", "starlette", "uvicorn",
         "pydantic", "pydantic_settings", "yaml", "orjson"]  # fmt: skip


def imported_by(code: str, home: Path) -> set[str]:
    """The top-level packages in `sys.modules` after `code` ran in a fresh interpreter."""
    out = home / "modules.json"
    tops = "sorted({m.split('.')[0] for m in sys.modules})"
    script = f"{code}\nimport json, sys\nopen({str(out)!r}, 'w').write(json.dumps({tops}))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELYARD_")}
    env["MODELYARD_HOME"] = str(home)
    subprocess.run([sys.executable, "-c", script], env=env, cwd=home, check=True,
                   capture_output=True)  # fmt: skip
    return set(json.loads(out.read_text()))


def run_cli(*args: str) -> str:
    return (
        "import sys\nfrom modelyard.cli import main\n"
        f"sys.argv = ['modelyard', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    assert not exit.code, exit.code\n"
    )


def test_import_modelyard_is_light(tmp_path: Path) -> None:
    assert imported_by("import modelyard", tmp_path) & set(LIGHT) == set()


def test_help_is_light(tmp_path: Path) -> None:
    assert imported_by(run_cli("--help"), tmp_path) & set(LIGHT) == set()
    # A group's help runs the root callback, which builds the settings (pydantic).
    settled = set(LIGHT) - {"pydantic", "pydantic_settings"}
    assert imported_by(run_cli("versions", "--help"), tmp_path) & settled == set()


def test_a_listing_imports_no_framework_nor_the_server(tmp_path: Path) -> None:
    heavy = {*FRAMEWORKS, "fastapi", "starlette", "uvicorn"}
    assert imported_by(run_cli("models", "list"), tmp_path) & heavy == set()


def test_flavors_load_only_their_own_module(tmp_path: Path) -> None:
    code = "from modelyard.flavors import get_flavor\nget_flavor('pyfunc')"
    assert imported_by(code, tmp_path) & {*FRAMEWORKS, "sqlalchemy"} == set()


def test_flavor_modules_are_imported_on_demand() -> None:
    code = (
        "import sys\nfrom modelyard.flavors import get_flavor\nget_flavor('pyfunc')\n"
        "print(sorted(m for m in sys.modules if m.startswith('modelyard.flavors._')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = done.stdout
    assert "modelyard.flavors._pyfunc" in loaded
    for other in ("_torch", "_onnx", "_sklearn", "_xgboost", "_lightgbm", "_transformers"):
        assert f"modelyard.flavors.{other}'" not in loaded


def test_a_scikit_learn_model_never_imports_transformers(tmp_path: Path) -> None:
    """Saving asks every flavor whether it matches (the transformers one among them), loading
    only the model's own: neither imports transformers."""
    code = (
        "import numpy as np\nfrom sklearn.dummy import DummyRegressor\n"
        "from modelyard.flavors import load_model, save_model\n"
        "model = DummyRegressor().fit(np.zeros((2, 1)), [0.0, 1.0])\n"
        f"save_model(model, {str(tmp_path / 'model')!r}, input_example=np.zeros((1, 1)))\n"
        f"load_model({str(tmp_path / 'model')!r}).predict(np.zeros((1, 1)))"
    )
    assert imported_by(code, tmp_path) & {"transformers", "tokenizers"} == set()


def test_catalog_names_each_flavor_with_its_module_and_extra() -> None:
    from modelyard.flavors import flavors, get_flavor
    from modelyard.flavors._catalog import FLAVOR_MODULES

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name, (module, extra) in FLAVOR_MODULES.items():
        assert get_flavor(name).name == name
        assert type(get_flavor(name)).__module__ == module
        assert extra is None or extra in extras, f"{name}: no extra {extra!r}"
    assert set(FLAVOR_MODULES) <= set(flavors())


def test_unknown_flavor_lists_the_known_ones() -> None:
    from modelyard.errors import UnsupportedModel
    from modelyard.flavors import get_flavor

    with pytest.raises(UnsupportedModel, match="known flavors: lightgbm, onnx, pyfunc, sklearn"):
        get_flavor("keras")


def test_skops_imports_neither_torch_nor_dask(tmp_path: Path) -> None:
    """scikit-learn's package walk would import its torch and dask adapters (seconds); they
    stay importable afterwards."""
    code = (
        "from modelyard._imports import require\nrequire('skops.io', extra='sklearn')\n"
        "import sys\nassert 'torch' not in sys.modules and 'dask' not in sys.modules\n"
        "assert not any(type(f).__name__ == '_Refuse' for f in sys.meta_path)"
    )
    imported_by(code, tmp_path)
    later = imported_by(f"{code}\nimport sklearn.externals.array_api_compat.torch", tmp_path)
    assert "torch" in later
