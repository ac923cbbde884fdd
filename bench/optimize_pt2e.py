"""Static int8 of the torch MLP through an exported program (PT2E, torchao). A section of
bench/optimize.py.

The stored version is what serving runs: the exported program, eagerly, with torch's reference
quantize/dequantize operators on the activations (smaller, and slower than float). Its speed-up
needs `torch.compile` (inductor, with freezing, lowers the int8 pattern to oneDNN kernels),
which serving does not do; so two more rows time the PT2E graph compiled, and the float parent
compiled, against the eager float parent: what a caller who compiles it would get, and what
compiling alone gives. Their `seconds` is the compile time.
"""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np

from bench.optimize import row

LABEL = "int8 static PT2E (torch)"


def rows(yard: Any, digits: dict[str, Any]) -> list[dict[str, Any]]:
    data = {"eval_data": (digits["x_test"], digits["y_test"]), "force": True}
    calibration = digits["x_train"][:256]
    static = row("MLP (digits)", "mlp:1", LABEL, lambda: yard.optimize.quantize(
        "mlp:1", method="static", calibration=calibration, alias="pt2e", **data))  # fmt: skip
    found = [static]
    if "error" not in static:
        from modelyard.optimize._pt2e import quantize_static

        # The stored version, as loaded, has its weights dequantized once (see _torch_folding);
        # inductor lowers the int8 pattern only as convert_pt2e leaves it: the same graph,
        # made again from the same calibration rows.
        int8 = quantize_static(yard.load_model("mlp:1").native, calibration)
        found.append(compiled_row(yard, digits, int8, static["version"], f"{LABEL}, compiled"))
        parent = yard.load_model("mlp:1").native
        found.append(compiled_row(yard, digits, parent, "mlp:1", "float (torch), compiled"))
    return found


class Compiled:
    """A stored torch version's module compiled by inductor, with `predict` as the flavor's."""

    def __init__(self, module: Any, folder: Any) -> None:
        import torch

        self.module, self.folder = torch.compile(module), folder

    def predict(self, rows: Any) -> Any:
        import torch

        with torch.no_grad():
            return self.module(torch.from_numpy(np.ascontiguousarray(rows))).numpy()


def compiled_row(
    yard: Any, digits: dict[str, Any], module: Any, ref: str, label: str
) -> dict[str, Any]:
    import torch

    from modelyard.optimize._measure import evaluate, latencies, metric_named, model_bytes

    x, y = digits["x_test"], digits["y_test"]
    parent = yard.load_model("mlp:1")
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(), torch._inductor.config.patch(freezing=True):
            warnings.simplefilter("ignore")  # inductor's own UserWarnings while it lowers
            model = Compiled(module, yard.model_folder(yard.get_version(ref)))
            for batch in (1, 64):
                model.predict(x[:batch])  # compiled here: batch 1, then a dynamic batch
    except Exception as error:  # no C++ compiler, an unsupported lowering: recorded, not fatal
        return {"model": "MLP (digits)", "parent": "mlp:1", "step": label, "error": str(error)}
    seconds = time.perf_counter() - start
    before_b1, after_b1 = latencies([parent, model], x, batch=1)
    before_b64, after_b64 = latencies([parent, model], x, batch=64, calls=5)
    score = metric_named("accuracy", None)[1]
    before, after = evaluate(parent, x, y, score), float(score(y, model.predict(x)))
    parent_bytes, size = model_bytes(parent.folder), model_bytes(model.folder)
    return {
        "model": "MLP (digits)", "parent": "mlp:1", "step": label, "version": ref,
        "seconds": round(seconds, 2), "parent_bytes": parent_bytes, "bytes": size,
        "size_ratio": parent_bytes / size,
        "parent_p50_b1_ms": before_b1, "p50_b1_ms": after_b1, "speedup_b1": before_b1 / after_b1,
        "parent_p50_b64_ms": before_b64, "p50_b64_ms": after_b64,
        "speedup_b64": before_b64 / after_b64,
        "parent_metric": before, "metric": after, "metric_change": (after - before) / before,
        "accepted": (after - before) / before >= -0.01,  # the metric only: the column "within 1%"
    }  # fmt: skip
