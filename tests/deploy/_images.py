"""What the image tests share: a small sklearn model and a wheelhouse built on the host.

No package index is reachable from inside a build here (and should not be needed), so the
image installs from wheels: the model's pinned requirements and modelyard's core dependencies
are fetched once with `pip wheel` and cached under ~/.cache/modelyard/ by the hash of what was
asked; modelyard's own wheel is built fresh from this checkout every time.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelyard import Yard

REPO = Path(__file__).resolve().parents[2]
CACHE = Path.home() / ".cache" / "modelyard"


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    """Iris features (float64) and labels."""
    features, labels = load_iris(return_X_y=True)
    return features, labels


def register_iris(yard: Yard, *, c: float = 1.0) -> str:
    """Fit and register a logistic regression on iris; its reference (`iris:N`)."""
    features, labels = iris_data()
    model = LogisticRegression(C=c, max_iter=1000).fit(features, labels)
    return yard.log_model(model, name="iris", input_example=features[:5]).ref


def wheelhouse(requirements: list[str], target: Path) -> Path:
    """`target` filled with wheels for `requirements` (modelyard's from this checkout)."""
    third_party = sorted(line for line in requirements if not line.startswith("modelyard=="))
    core = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    asked = [*third_party, *sorted(core)]
    key = hashlib.sha256("\n".join(asked).encode()).hexdigest()[:16]
    cached = CACHE / f"wheels-{key}"
    if not cached.exists():
        partial = CACHE / f"wheels-{key}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        _pip("wheel", "--wheel-dir", str(partial), *asked)
        partial.rename(cached)
    target.mkdir(parents=True)
    for wheel in cached.glob("*.whl"):
        (target / wheel.name).hardlink_to(wheel)
    _pip("wheel", "--no-deps", "--wheel-dir", str(target), str(REPO))
    return target


def _pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check",
                    *args], check=True, timeout=900)  # fmt: skip
