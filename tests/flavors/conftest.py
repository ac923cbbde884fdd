"""Helpers for flavor tests: predictions from a model loaded in a fresh Python process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

LOAD_AND_PREDICT = """
import pickle, sys
import numpy as np
from modelyard.flavors import load_model
folder, inputs, out, trust, kind = sys.argv[1:]
model = load_model(folder, trust=trust == "1")
with np.load(inputs, allow_pickle=False) as stored:
    columns = {name: stored[name] for name in stored.files}
if kind == "pd":
    import pandas
    data = pandas.DataFrame(columns)
elif kind == "dict":
    data = columns
else:
    data = columns["x"]
np.save(out, np.asarray(model.predict(data)), allow_pickle=False)
"""


def predict_in_fresh_process(
    folder: Path, inputs: Any, tmp_path: Path, *, trust: bool = False
) -> np.ndarray[Any, Any]:
    """Load `folder` in a new interpreter, predict `inputs` there, and return the predictions."""
    kind = "np"
    if hasattr(inputs, "columns"):
        kind, columns = "pd", {str(c): inputs[c].to_numpy() for c in inputs.columns}
    elif isinstance(inputs, dict):
        kind, columns = "dict", inputs
    else:
        columns = {"x": np.asarray(inputs)}
    np.savez(tmp_path / "inputs.npz", **columns)
    out = tmp_path / "predictions.npy"
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(folder), str(tmp_path / "inputs.npz"),
         str(out), "1" if trust else "0", kind],
        check=True,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    return np.load(out, allow_pickle=False)
