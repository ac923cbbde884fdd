"""Helpers for flavor tests: predictions from a model loaded in a fresh Python process, where
nothing of the test's process (the trained object, caches, imported modules) can help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from modelyard.security import TrustPolicy

OPERATOR = TrustPolicy(modules=("tests",))
"""What the tests' operator allows: the test models' own classes (tests.*), which torch
versions name."""

LOAD_AND_PREDICT = """
import sys
import numpy as np
from modelyard.flavors import load_model
from modelyard.security import TrustPolicy
folder, inputs, out, trust, kind = sys.argv[1:]
# The tests' operator allows the classes of the test models (tests.*).
model = load_model(folder, trust=TrustPolicy.of(trust == "1", modules=["tests"]))
with np.load(inputs, allow_pickle=False) as stored:
    columns = {name: stored[name] for name in stored.files}
if kind == "pd":
    import pandas as pd
    # .npz holds no pickle: categorical columns travel as strings and become categories again
    data = pd.DataFrame(
        {c: pd.Categorical(v) if v.dtype.kind == "U" else v for c, v in columns.items()}
    )
elif kind == "dict":
    data = columns
else:
    data = columns["x"]
outputs = model.predict(data)
np.savez(out, **outputs if isinstance(outputs, dict) else {"output": np.asarray(outputs)})
"""


def predict_in_fresh_process(
    folder: Path, inputs: Any, tmp_path: Path, *, trust: bool = False
) -> Any:
    """Load `folder` in a new interpreter and predict `inputs` (an array, a DataFrame or a dict)
    there; return the predictions (a dict when the model answers with one)."""
    if isinstance(inputs, pd.DataFrame):
        kind, columns = "pd", {str(c): _column(inputs[c]) for c in inputs.columns}
    elif isinstance(inputs, dict):
        kind, columns = "dict", inputs
    else:
        kind, columns = "np", {"x": np.asarray(inputs)}
    np.savez(tmp_path / "inputs.npz", **columns)
    out = tmp_path / "predictions.npz"
    subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(folder), str(tmp_path / "inputs.npz"),
         str(out), "1" if trust else "0", kind],
        check=True,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    with np.load(out, allow_pickle=False) as stored:
        outputs = {name: stored[name] for name in stored.files}
    return outputs["output"] if list(outputs) == ["output"] else outputs


def _column(series: pd.Series) -> np.ndarray:  # type: ignore[type-arg]
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.to_numpy(dtype=str)
    return series.to_numpy()
